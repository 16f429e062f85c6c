"""The Humanoid task on the CPU: contract, model, observation layout, reward terms, resets, and a real training run."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import CPU, compose_config, make_cpu_task, run_in_process

from harness.config import prepare_config

NUM_ENVS = 6


def make_humanoid(num_envs: int = NUM_ENVS, *overrides: str):
    return make_cpu_task("Humanoid", num_envs, *overrides)


@pytest.fixture(scope="module")
def humanoid():
    return make_humanoid()


def test_upstream_config_and_model(humanoid):
    cfg = prepare_config(compose_config("task=Humanoid", *CPU))
    assert cfg.task.env.numEnvs == 4096 and cfg.train.params.config.max_epochs == 1000
    assert cfg.train.params.network.mlp.units == [400, 200, 100] and cfg.train.params.config.horizon_length == 32
    model = humanoid.sim.mj_model
    assert model.nbody - 1 == 16 and model.nu == 21 and model.nq == 7 + 21
    assert model.body_subtreemass[1] == pytest.approx(40.8, abs=0.2), "capsules of density 1000, as upstream"
    gears = humanoid.motor_gear
    assert gears.max() == 135 and gears.sum() == pytest.approx(1282.5)
    ranges = torch.rad2deg(torch.stack((humanoid.dof_lower, humanoid.dof_upper), -1))
    assert torch.allclose(ranges[6], torch.tensor([-160.0, 2.0])), "joint 6 is the right knee"


def test_contract_and_start_pose(humanoid):
    obs = humanoid.reset()["obs"]
    assert obs.shape == (NUM_ENVS, 108) and humanoid.num_actions == 21 and humanoid.max_episode_length == 1000
    assert torch.allclose(obs[:, 0], torch.full((NUM_ENVS,), 1.34)), "start height 1.34 m"
    assert torch.allclose(obs[:, 1:10], torch.zeros(NUM_ENVS, 9)), "at rest, facing the target"
    assert torch.allclose(obs[:, 10:12], torch.ones(NUM_ENVS, 2)), "upright, heading +x"
    start = humanoid.sim.qpos[:, 7:]
    assert (start.abs() <= 0.2 + 1e-6).all() and start.std() > 0.05, "joints at 0 + U(-0.2, 0.2) rad"
    assert (obs[:, 33:54].abs() <= 0.1 * 0.1 + 1e-6).all(), "joint velocities U(-0.1, 0.1), x 0.1"
    obs, reward, done, extras = humanoid.step(torch.zeros(NUM_ENVS, 21))
    assert reward.shape == done.shape == extras["time_outs"].shape == (NUM_ENVS,)


def test_torques_are_action_times_gear_and_observed(humanoid):
    humanoid.reset()
    actions = torch.linspace(-3, 3, 21).expand(NUM_ENVS, 21)
    obs = humanoid.step(actions)[0]["obs"]
    clipped = actions.clamp(-1, 1)
    torques = clipped * humanoid.motor_gear
    assert torch.allclose(humanoid.sim.qfrc_actuator[:, 6:], torques, atol=1e-3)
    assert torch.allclose(obs[:, 54:75], torques * 0.01, atol=1e-5), "joint torques x contactForceScale"
    assert torch.equal(obs[:, 87:108], clipped)


def test_foot_sensors_feel_the_floor():
    humanoid = make_humanoid(2)
    humanoid.reset()
    humanoid.sim.qpos[:, 7:] = 0.0
    humanoid.sim.qvel.zero_()
    humanoid.sim.qpos[:, 2] = torch.tensor([1.29, 2.5])  # feet just above the floor, or high in the air
    for _ in range(3):
        obs = humanoid.step(torch.zeros(2, 21))[0]["obs"]
    vertical = (obs[:, [77, 83]] / 0.01).abs()  # z force at each ankle: right foot, left foot
    assert (vertical[0] > 100).all(), "standing: each ankle carries a good part of the 380 N above it"
    assert (vertical[1] < 1).all(), "falling freely: no load"


def test_reward_follows_the_upstream_terms(humanoid):
    obs = humanoid.obs_buf
    obs.zero_()
    obs[:, 0], obs[:, 10], obs[:, 11] = 1.2, 1.0, 1.0  # standing, upright, facing the target
    humanoid.prev_potentials.fill_(-10.0)
    humanoid.potentials.fill_(-9.0)  # 1 m/s towards the target
    humanoid.actions.zero_()
    obs[1, 12 + 6] = -1.0  # right knee at its limit: 0.25 x 1 x 90/135
    obs[2, 12 + 6] = 0.99  # halfway into the last 2% of its range: 0.25 x 0.5 x 90/135
    humanoid.actions[3, 5], obs[3, 33 + 5] = 1.0, 0.5  # right hip y pushing while moving: 0.01 x 1 + 0.05 x 0.5
    obs[4, 10], obs[4, 11] = 0.9, 0.4  # leaning (no up bonus), heading off: 0.5 x 0.4 / 0.8
    obs[5, 0] = 0.79  # below terminationHeight: deathCost replaces the reward
    fell = humanoid.compute_reward()
    full = 1.0 + 2.0 + 0.1 + 0.5
    expected = torch.tensor([full, full - 1 / 6, full - 1 / 12, full - 0.01 - 0.025, 1.0 + 2.0 + 0.25, -1.0])
    assert torch.allclose(humanoid.rew_buf, expected, atol=1e-5)
    assert fell.tolist() == [False] * 5 + [True]


def test_a_fall_ends_the_episode(humanoid):
    humanoid.reset()
    humanoid.sim.qpos[0, 2] = 0.3
    humanoid.sim.qpos[0, 3:7] = torch.tensor([math.cos(math.pi / 4), 0, math.sin(math.pi / 4), 0])  # lying down
    obs, reward, done, extras = humanoid.step(torch.zeros(NUM_ENVS, 21))
    assert done.tolist() == [True] + [False] * (NUM_ENVS - 1) and not extras["time_outs"].any()
    assert reward[0] == -1.0 and humanoid.progress_buf[0] == 0
    assert obs["obs"][0, 0] == pytest.approx(1.34), "an ended env returns the first observation of its next episode"


def test_random_actions_stay_finite_and_reset_only_fallen_worlds():
    humanoid = make_humanoid(8)
    humanoid.reset()
    generator = torch.Generator().manual_seed(0)
    falls = 0
    for _ in range(200):
        before = humanoid.progress_buf.clone()
        obs, reward, done, _ = humanoid.step(torch.rand(8, 21, generator=generator) * 2 - 1)
        assert torch.isfinite(obs["obs"]).all() and torch.isfinite(reward).all()
        assert torch.equal(humanoid.progress_buf[~done], before[~done] + 1) and (humanoid.progress_buf[done] == 0).all()
        falls += int(done.sum())
    assert falls > 0, "random torques topple a humanoid within 200 steps"


def test_target_angle_is_the_bearing_to_the_target(humanoid):
    humanoid.reset()
    humanoid.sim.qpos[:, 3:7] = torch.tensor([math.cos(0.25), 0, 0, math.sin(0.25)])  # yawed by 0.5 rad
    humanoid.compute_observations()
    obs = humanoid.obs_buf
    assert torch.allclose(obs[:, 7], torch.full((NUM_ENVS,), 0.5), atol=1e-5)
    assert torch.allclose(obs[:, 9], torch.full((NUM_ENVS,), -0.5), atol=1e-4)


def test_train_and_play_humanoid_end_to_end(tmp_path):
    train = [
        "task=Humanoid",
        "num_envs=16",
        "max_iterations=2",
        *CPU,
        "train.params.config.minibatch_size=256",
        "train.params.config.save_best_after=1",
        "train.params.config.save_frequency=1",
    ]
    result = run_in_process("train.py", *train, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "runs" / "Humanoid" / "nn").glob("last_*.pth"))
    played = run_in_process(
        "play.py", "task=Humanoid", "checkpoint=auto", "num_envs=4", *CPU, "num_episodes=4", cwd=tmp_path
    )
    assert played.returncode == 0 and "Play report: Humanoid" in played.stdout, played.stderr[-2000:]
