"""The Anymal task on the CPU: config, model, observation layout, actions, reward terms, ends of episodes, resets."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch
from conftest import CPU, compose_config, gpu_twin_under_way, make_cpu_task

from harness.config import prepare_config

NUM_ENVS = 6
JOINTS = [f"{leg}_{joint}" for leg in ("LF", "LH", "RF", "RH") for joint in ("HAA", "HFE", "KFE")]
DEFAULT = [0.03, 0.4, -0.8, 0.03, -0.4, 0.8, -0.03, 0.4, -0.8, -0.03, -0.4, 0.8]


@pytest.fixture(scope="module")
def anymal():
    return make_cpu_task("Anymal", NUM_ENVS)


def test_upstream_config():
    cfg = prepare_config(compose_config("task=Anymal", *CPU))
    ppo = cfg.train.params.config
    assert cfg.task.env.numEnvs == 4096 and ppo.max_epochs == 1000 and ppo.horizon_length == 24
    assert ppo.minibatch_size == 32768 and ppo.mini_epochs == 5 and ppo.reward_shaper.scale_value == 1.0
    assert ppo.bounds_loss_coef == 0.001 and ppo.truncate_grads and ppo.value_bootstrap
    assert cfg.train.params.network.mlp.units == [256, 128, 64]


def test_model_follows_the_published_robot(anymal):
    model = anymal.sim.mj_model
    assert [model.joint(model.actuator_trnid[i, 0]).name for i in range(12)] == JOINTS
    assert model.body_subtreemass[1] == pytest.approx(52.13485), "the URDF's masses"
    assert model.opt.timestep == pytest.approx(0.01), "dt 0.02 in 2 substeps"
    assert np.allclose(model.actuator_gainprm[:, 0], 85.0) and np.allclose(model.actuator_biasprm[:, 1:3], [-85, -2])
    assert np.allclose(model.actuator_forcerange, [-80, 80])
    # The feet at the default angles, where the fact sheet puts them in the base frame (its own FK of the URDF).
    data = mujoco.MjData(model)
    data.qpos[7:] = DEFAULT
    mujoco.mj_kinematics(model, data)
    for leg, sx, sy in (("LF", 1, 1), ("LH", -1, 1), ("RF", 1, -1), ("RH", -1, -1)):
        foot = data.geom(f"{leg}_foot").xpos - data.qpos[:3]
        assert np.allclose(foot, [sx * 0.4527, sy * 0.3166, -0.5127], atol=2e-4), leg


def test_contract_and_first_observation(anymal):
    obs = anymal.reset()["obs"]
    assert obs.shape == (NUM_ENVS, 48) and anymal.num_actions == 12 and anymal.max_episode_length == 2500
    assert torch.equal(obs[:, 0:6], torch.zeros(NUM_ENVS, 6)), "the base starts at rest"
    assert torch.allclose(obs[:, 6:9], torch.tensor([0.0, 0.0, -1.0]).expand(NUM_ENVS, 3)), "level"
    commands = anymal.commands
    assert (commands[:, 0].abs() <= 2).all() and (commands[:, 1].abs() <= 1).all() and (commands[:, 2].abs() <= 1).all()
    assert torch.allclose(obs[:, 9:12], commands * torch.tensor([2.0, 2.0, 0.25]))
    default = torch.tensor(DEFAULT)
    assert (obs[:, 12:24].abs() <= 0.5 * default.abs() + 1e-6).all(), "joints at the default x U(0.5, 1.5)"
    assert (obs[:, 24:36].abs() <= 0.1 * 0.05 + 1e-6).all() and torch.equal(obs[:, 36:48], torch.zeros(NUM_ENVS, 12))
    assert torch.allclose(anymal.sim.qpos[:, :7], torch.tensor([0, 0, 0.62, 1, 0, 0, 0.0]).expand(NUM_ENVS, 7))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_observes_and_rewards_as_the_cpu(anymal):
    """The observation and reward kernels on CUDA, from the CPU env's state under way, give the CPU's values."""
    gpu = gpu_twin_under_way(anymal)
    gpu.sim.qfrc_actuator.copy_(anymal.sim.qfrc_actuator)  # computed by a physics step, not in the saved state
    for task in (anymal, gpu):
        task.compute_observations()
        task.compute_reward()  # (its falls read the contacts, which the saved state does not hold: not compared)
    torch.testing.assert_close(gpu.obs_buf.cpu(), anymal.obs_buf, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gpu.rew_buf.cpu(), anymal.rew_buf, rtol=1e-5, atol=1e-6)
    anymal.reset()


def test_actions_are_joint_targets_around_the_default_pose(anymal):
    anymal.reset()
    actions = torch.zeros(NUM_ENVS, 12)
    actions[0], actions[1] = 5.0, -0.4
    obs, *_ = anymal.step(actions)
    assert torch.allclose(anymal.sim.ctrl[0], torch.tensor(DEFAULT) + 0.5), "clipped to 1, times actionScale 0.5"
    assert torch.allclose(anymal.sim.ctrl[1], torch.tensor(DEFAULT) - 0.2)
    assert torch.allclose(anymal.sim.ctrl[2], torch.tensor(DEFAULT))
    assert torch.allclose(obs["obs"][0, 36:48], torch.ones(12)) and torch.allclose(obs["obs"][1, 36:48], actions[1])


def test_standing_still_on_the_default_targets_ends_no_episode(anymal):
    anymal.reset()
    for _ in range(100):
        _, reward, done, _ = anymal.step(torch.zeros(NUM_ENVS, 12))
        assert not done.any() and (reward >= 0).all() and (reward <= 0.03).all()
    assert (anymal.sim.qpos[:, 2] > 0.35).all(), "standing on its feet"


def test_reward_follows_the_upstream_terms(anymal):
    """Each term with upstream's scales (times dt 0.02), one changed per env, by hand."""
    anymal.reset()
    anymal.step(torch.zeros(NUM_ENVS, 12))  # fresh contacts: all feet, nothing else
    sim = anymal.sim
    sim.qpos[:, 3:7] = torch.tensor([1.0, 0, 0, 0])
    sim.qvel.zero_()
    sim.qfrc_actuator.zero_()
    anymal.commands.zero_()
    anymal.commands[1, 0] = 0.5  # forward command, base at rest: exp(-0.25 / 0.25)
    anymal.commands[2, 2] = -1.0  # yaw-rate command, not turning: exp(-1 / 0.25)
    sim.qvel[3, 0], sim.qvel[3, 1] = 0.5, 0.5  # following no command: exp(-0.5 / 0.25)
    sim.qfrc_actuator[4, 6:] = 40.0  # torques: -0.000025 x 12 x 1600
    sim.qfrc_actuator[5, 6:] = 80.0  # torques large enough to make the sum negative: clipped to 0
    fallen = anymal.compute_reward()
    dt, lin, ang = 0.02, 1.0, 0.5
    expected = [
        dt * (lin + ang),
        dt * (lin * math.exp(-1.0) + ang),
        dt * (lin + ang * math.exp(-4.0)),
        dt * (lin * math.exp(-2.0) + ang),
        dt * (lin + ang - 0.000025 * 12 * 1600),
        0.0,
    ]
    assert torch.allclose(anymal.rew_buf, torch.tensor(expected), atol=1e-7)
    assert not fallen.any()
    anymal.reset()


def test_base_on_the_ground_ends_the_episode_and_starts_a_new_one(anymal):
    anymal.reset()
    anymal.sim.qpos[2, 2] = 0.05  # base box (0.09 below its centre) into the floor
    obs, reward, done, extras = anymal.step(torch.zeros(NUM_ENVS, 12))
    assert done.tolist() == [False, False, True, False, False, False] and not extras["time_outs"].any()
    assert anymal.progress_buf[2] == 0 and anymal.sim.qpos[2, 2] == pytest.approx(0.62)
    assert torch.allclose(obs["obs"][2, 6:9], torch.tensor([0.0, 0.0, -1.0])), "the next episode's first observation"


def test_a_thigh_on_the_ground_ends_the_episode(anymal):
    anymal.reset()
    sim = anymal.sim
    # Rolled 90 degrees about x, left side up, base 0.25 m high: the right legs' knee drives reach into the floor,
    # the base itself stays above it (its lowest point at 0.09 m).
    sim.qpos[4, 2] = 0.25
    sim.qpos[4, 3:7] = torch.tensor([math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0])
    _, _, done, _ = anymal.step(torch.zeros(NUM_ENVS, 12))
    assert done[4] and not done[:4].any() and not done[5]


def test_commands_are_drawn_at_reset_and_held():
    anymal = make_cpu_task("Anymal", 64)
    anymal.reset()
    first = anymal.commands.clone()
    for _ in range(5):
        anymal.step(torch.zeros(64, 12))
    assert torch.equal(anymal.commands, first)
    low, high = first.min(0).values, first.max(0).values
    assert (low < torch.tensor([-1.0, -0.5, -0.5])).all() and (high > torch.tensor([1.0, 0.5, 0.5])).all()


def test_time_limit_ends_episodes_as_time_outs():
    anymal = make_cpu_task("Anymal", 2, "task.env.learn.episodeLength_s=0.2")  # 10 steps of 0.02 s
    anymal.reset()
    for step in range(1, 10):
        _, _, done, extras = anymal.step(torch.zeros(2, 12))
        assert bool(done.all()) == (step == 9) and torch.equal(extras["time_outs"], done)


def test_base_up_observation_is_upstreams_rotated_down_vector(anymal):
    """R (0, 0, -1): minus the base's z axis in world coordinates (upstream's quirk, kept)."""
    half = math.pi / 4
    anymal.reset()
    anymal.sim.qpos[:3, 3:7] = torch.tensor(
        [
            [1.0, 0, 0, 0],  # level
            [math.cos(half), math.sin(half), 0, 0],  # rolled 90 deg about x: base z is world -y
            [math.cos(half), 0, math.sin(half), 0],  # pitched 90 deg about y: base z is world +x
        ]
    )
    anymal.sim.qpos[3, 3:7] = torch.tensor([math.cos(half), 0, 0, math.sin(half)])  # yawed 90 deg: base x is world y
    anymal.sim.qvel[3, :6] = torch.tensor([1.0, 0, 0, 0, 0, 0.5])  # moving along world x, turning
    anymal.compute_observations()
    expected = torch.tensor([[0.0, 0, -1], [0, 1, 0], [-1, 0, 0]])
    assert torch.allclose(anymal.obs_buf[:3, 6:9], expected, atol=1e-6)
    # along the base's -y, times linearVelocityScale 2; the yaw rate times angularVelocityScale 0.25
    assert torch.allclose(anymal.obs_buf[3, :6], torch.tensor([0.0, -2.0, 0, 0, 0, 0.125]), atol=1e-6)
    anymal.reset()
