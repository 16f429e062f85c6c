"""The Ant task on the CPU: the VecTask contract, rewards, resets and time-outs."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import gpu_twin_under_way, make_ant


@pytest.fixture(scope="module")
def ant():
    return make_ant(8)


def test_contract_shapes_dtypes_devices(ant):
    obs = ant.reset()
    assert set(obs) == {"obs"} and obs["obs"].shape == (8, 60) and obs["obs"].dtype == torch.float32
    assert ant.num_obs == 60 and ant.num_actions == 8 and ant.observation_space.shape == (60,)
    assert ant.action_space.shape == (8,) and (ant.action_space.low == -1).all()
    obs, reward, done, extras = ant.step(torch.zeros(8, 8))
    assert obs["obs"].shape == (8, 60) and reward.shape == (8,) and done.shape == (8,)
    assert reward.dtype == torch.float32 and done.dtype == torch.bool
    assert extras["time_outs"].shape == (8,) and extras["time_outs"].dtype == torch.bool
    assert all(t.device.type == "cpu" for t in (obs["obs"], reward, done, extras["time_outs"]))


def test_first_observation_matches_the_start_pose(ant):
    obs = ant.reset()["obs"]
    assert torch.allclose(obs[:, 0], torch.full((8,), 0.44))  # torso height
    assert torch.allclose(obs[:, 1:7], torch.zeros(8, 6))  # root velocities are zero at the start
    assert torch.allclose(obs[:, 10], torch.ones(8)) and torch.allclose(obs[:, 11], torch.ones(8))  # upright, facing +x
    assert (obs[:, 12:20].abs() <= 1).all() and (obs[:, 20:28].abs() <= 0.1 * 0.2 + 1e-6).all()
    assert torch.equal(obs[:, 52:60], torch.zeros(8, 8))


def test_observations_and_rewards_stay_finite_under_random_actions(ant):
    ant.reset()
    generator = torch.Generator().manual_seed(0)
    rewards, dones = [], 0
    for _ in range(300):
        obs, reward, done, _ = ant.step(torch.rand(8, 8, generator=generator) * 2 - 1)
        assert torch.isfinite(obs["obs"]).all() and torch.isfinite(reward).all()
        rewards.append(reward)
        dones += int(done.sum())
    rewards = torch.stack(rewards)
    assert rewards.abs().max() < 100 and rewards.std() > 0


def test_observation_of_a_turned_moving_torso(ant):
    """Each torso entry and the joints' scaling computed by hand, for a torso yawed 90 degrees and rolled 0.3 rad."""
    ant.reset()
    half_yaw, half_roll = math.pi / 4, 0.15
    yaw_then_roll = [  # (w, x, y, z) of the yaw rotation times the roll one
        math.cos(half_yaw) * math.cos(half_roll),
        math.cos(half_yaw) * math.sin(half_roll),
        math.sin(half_yaw) * math.sin(half_roll),
        math.sin(half_yaw) * math.cos(half_roll),
    ]
    qpos, qvel = ant.sim.qpos, ant.sim.qvel
    qpos[:, :7] = torch.tensor([0.0, 5.0, 0.6, *yaw_then_roll])
    qvel[:, :6] = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 2.0])  # along world x, spinning about the torso's z
    qpos[:, 7:] = ant.dof_upper  # every joint at its upper limit
    qvel[:, 6:] = 3.0
    ant.potentials.fill_(-7.0)
    ant.compute_observations()
    obs = ant.obs_buf[0]
    # World x is the yawed torso's -y; the roll about the torso's x turns that -y towards -z.
    velocity = torch.tensor([0.0, -math.cos(0.3), math.sin(0.3)])
    torch.testing.assert_close(obs[:7], torch.tensor([0.6, *velocity, 0.0, 0.0, 2.0]), atol=1e-5, rtol=0)
    bearing = math.atan2(-5.0, 1000.0)  # the target seen from (0, 5)
    torso = [math.pi / 2, 0.3, bearing - math.pi / 2, math.cos(0.3), math.sin(bearing)]  # body x is world y
    torch.testing.assert_close(obs[7:12], torch.tensor(torso), atol=1e-5, rtol=0)
    torch.testing.assert_close(obs[12:28], torch.tensor([1.0] * 8 + [3.0 * 0.2] * 8), atol=1e-5, rtol=0)
    assert ant.prev_potentials[0] == -7.0
    assert ant.potentials[0].item() == pytest.approx(-math.hypot(1000.0, 5.0) / 0.0166, rel=1e-6)
    ant.reset()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_observes_and_rewards_as_the_cpu(ant):
    """The observation and reward kernels on CUDA, from the CPU env's state under way, give the CPU's values."""
    gpu = gpu_twin_under_way(ant)
    gpu.sim.sensordata.copy_(ant.sim.sensordata)  # computed by a physics step, not part of the saved state
    for task in (ant, gpu):
        task.compute_observations()
        task.compute_reward()
    torch.testing.assert_close(gpu.obs_buf.cpu(), ant.obs_buf, rtol=1e-5, atol=1e-5)
    # The progress term is the difference of two potentials near -60,000 (-distance / dt), whose float32 spacing is
    # 2**-8: a last-bit difference in either (the GPU fuses multiply-adds) moves the reward by that much.
    torch.testing.assert_close(gpu.rew_buf.cpu(), ant.rew_buf, rtol=0, atol=2 * 2**-8)
    torch.testing.assert_close(gpu.potentials.cpu(), ant.potentials)
    assert torch.equal(gpu.fell.cpu(), ant.fell)
    ant.reset()


def test_actions_are_clipped_and_observed(ant):
    ant.reset()
    obs, *_ = ant.step(torch.full((8, 8), 5.0))
    assert torch.equal(ant.sim.ctrl, torch.ones(8, 8))
    assert torch.equal(obs["obs"][:, 52:60], torch.ones(8, 8))


def test_falling_ends_the_episode_with_the_death_cost(ant):
    ant.reset()
    ant.sim.qpos[3, 2] = 0.2  # torso below terminationHeight 0.31
    obs, reward, done, extras = ant.step(torch.zeros(8, 8))
    assert done[3] and not extras["time_outs"][3] and reward[3] == pytest.approx(-2.0)
    assert obs["obs"][3, 0] == pytest.approx(0.44), "an ended env returns the first observation of its next episode"
    assert ant.progress_buf[3] == 0


def test_time_limit_ends_episodes_as_time_outs():
    ant = make_ant(4, "task.env.episodeLength=10")
    ant.reset()
    for step in range(1, 10):
        _, _, done, extras = ant.step(torch.zeros(4, 8))
        assert bool(done.all()) == (step == 9) and torch.equal(extras["time_outs"], done)


def test_same_seed_same_first_rollout():
    def rollout():
        torch.manual_seed(7)
        ant = make_ant(4, "seed=7")
        obs = [ant.reset()["obs"]]
        for _ in range(20):
            obs.append(ant.step(torch.rand(4, 8) * 2 - 1)[0]["obs"])
        return torch.stack(obs)

    assert torch.equal(rollout(), rollout())


def test_reward_follows_the_upstream_terms(ant):
    """Each of upstream's terms (Ant.yaml's scales) computed by hand, one changed per env; every term counts."""
    obs = ant.obs_buf
    obs.zero_()
    obs[:, 0], obs[:, 10], obs[:, 11] = 0.5, 1.0, 1.0  # torso above terminationHeight, upright, facing the target
    ant.prev_potentials.fill_(-10.0)
    ant.potentials.fill_(-9.0)  # progress 1 towards the target
    ant.actions.zero_()
    obs[1, 12] = 1.0  # a joint at its limit: jointsAtLimitCost 0.1
    ant.actions[2, 0], obs[2, 20] = 1.0, 0.5  # pushing while moving: actionsCost 0.005 x 1 + energyCost 0.05 x 0.5
    obs[3, 10], obs[3, 11] = 0.9, 0.4  # leaning (no up bonus), heading off: headingWeight 0.5 x 0.4 / 0.8
    obs[4, 0] = 0.3  # below terminationHeight 0.31: deathCost replaces the reward
    fell = ant.compute_reward()
    full = 1.0 + 0.5 + 0.1 + 0.5  # progress + alive + up + heading
    expected = torch.tensor([full, full - 0.1, full - 0.005 - 0.025, 1.0 + 0.5 + 0.25, -2.0, full, full, full])
    assert torch.allclose(ant.rew_buf, expected, atol=1e-6)
    assert fell.tolist() == [False] * 4 + [True] + [False] * 3
    ant.reset()  # leave the shared env as the other tests expect it


def test_compile_task_steps_as_the_eager_task():
    """compile_task=True fuses the task math with torch.compile; the steps are the eager task's."""
    from conftest import CPU, compose_config

    from harness.config import prepare_config
    from harness.tasks import make_env

    compiled = make_env(prepare_config(compose_config("num_envs=8", "compile_task=True", *CPU)))
    eager = make_ant(8)
    assert compiled.compile_task_math and not eager.compile_task_math
    for task in (compiled, eager):
        torch.manual_seed(0)  # the same reset noise
        task.reset()
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        actions = torch.rand(8, 8, generator=generator) * 2 - 1
        (compiled_obs, compiled_reward, compiled_done, _), (obs, reward, done, _) = (
            compiled.step(actions),
            eager.step(actions),
        )
        torch.testing.assert_close(compiled_obs["obs"], obs["obs"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(compiled_reward, reward, rtol=1e-5, atol=1e-5)
        assert torch.equal(compiled_done, done) and not done.any()
