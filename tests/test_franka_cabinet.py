"""The FrankaCabinet task on the CPU: config, model, observation layout, actions, reward terms, ends and resets."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch
from conftest import CPU, compose_config, gpu_twin_under_way, make_cpu_task

from harness.config import prepare_config
from harness.tasks.franka_cabinet import Scene, franka_cabinet_reward

NUM_ENVS = 4
DEFAULT = [1.157, -1.066, -0.155, -2.239, -1.841, 1.003, 0.469, 0.035, 0.035]
LOWER = [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973, 0.0, 0.0]
UPPER = [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973, 0.04, 0.04]
SCALES = {"dist": 2.0, "rot": 0.5, "aroundHandle": 0.25, "open": 7.5, "fingerDist": 5.0, "actionPenalty": 0.01}


@pytest.fixture(scope="module")
def franka():
    return make_cpu_task("FrankaCabinet", NUM_ENVS)


def test_upstream_config():
    cfg = prepare_config(compose_config("task=FrankaCabinet", *CPU))
    ppo = cfg.train.params.config
    assert cfg.task.env.numEnvs == 4096 and cfg.task.env.episodeLength == 500 and cfg.task.env.actionScale == 7.5
    assert ppo.max_epochs == 1500 and ppo.horizon_length == 16 and ppo.minibatch_size == 8192 and ppo.mini_epochs == 8
    assert ppo.learning_rate == 5e-4 and ppo.reward_shaper.scale_value == 0.01 and ppo.critic_coef == 4
    assert ppo.bounds_loss_coef == 0.0001 and not ppo.get("value_bootstrap", False)
    assert cfg.train.params.network.mlp.units == [256, 128, 64]


def test_model_follows_the_published_arm_and_cabinet(franka):
    model = franka.sim.mj_model
    names = [model.joint(model.actuator_trnid[i, 0]).name for i in range(model.nu)]
    assert names == [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
    assert np.allclose(model.jnt_range[:9], np.stack([LOWER, UPPER], axis=1))
    assert np.allclose(model.actuator_forcerange[:, 1], [87, 87, 87, 87, 12, 12, 12, 200, 200])
    assert model.jnt_range[model.joint("drawer_top_joint").id].tolist() == [0.0, 0.4]
    # The fact sheet's forward kinematics of the URDF at the default pose: the grasp point (link7 plus its offset)
    # and the handle target.
    data = mujoco.MjData(model)
    data.qpos[:9] = DEFAULT
    mujoco.mj_kinematics(model, data)
    link7 = data.body("panda_link7")
    grasp = link7.xpos + link7.xmat.reshape(3, 3) @ [0.0, 0.04, 0.1654]
    assert np.allclose(grasp, [0.784, 0.082, 0.820], atol=1e-3)
    assert np.allclose(data.body("drawer_top").xpos + [0.3, 0.01, 0.0], [0.3515, 0.01, 0.7172])


def test_contract_and_observation_layout(franka):
    franka.reset()
    obs, _, _, _ = franka.step(torch.zeros(NUM_ENVS, 9))
    obs = obs["obs"]
    assert obs.shape == (NUM_ENVS, 23) and franka.num_actions == 9 and franka.max_episode_length == 500
    q, qd = franka.sim.qpos[:, :9], franka.sim.qvel[:, :9]
    lower, upper = torch.tensor(LOWER), torch.tensor(UPPER)
    torch.testing.assert_close(obs[:, :9], (2 * (q - lower) / (upper - lower) - 1).clamp(-5, 5))
    torch.testing.assert_close(obs[:, 9:18], (0.1 * qd).clamp(-5, 5))
    franka_grasp, drawer_grasp, _ = franka.grasp_frames()
    torch.testing.assert_close(obs[:, 18:21], drawer_grasp - franka_grasp)
    assert torch.equal(obs[:, 21], franka.sim.qpos[:, 9]) and torch.equal(obs[:, 22], franka.sim.qvel[:, 9])
    franka.sim.qpos[:, 9], franka.sim.qvel[:, 9] = 0.1, torch.tensor([0.2, -0.3, 7.0, -7.0])  # the drawer moving
    franka.compute_observations()
    assert franka.obs_buf[:, 21].tolist() == pytest.approx([0.1] * 4)
    assert franka.obs_buf[:, 22].tolist() == pytest.approx([0.2, -0.3, 5.0, -5.0]), "clipped to clipObservations"
    franka.reset()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_observes_and_rewards_as_the_cpu(franka):
    """The grasp-frame, observation and reward kernels on CUDA, from the CPU env's state under way, give the CPU's
    values."""
    gpu = gpu_twin_under_way(franka)
    gpu.body_pos.copy_(franka.body_pos)  # the bodies' poses: computed by a physics step, not in the saved state
    gpu.body_quat.copy_(franka.body_quat)
    for task in (franka, gpu):
        task.compute_observations()
        task.compute_reward()
    torch.testing.assert_close(gpu.obs_buf.cpu(), franka.obs_buf, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gpu.rew_buf.cpu(), franka.rew_buf, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gpu.franka_turn.cpu(), franka.franka_turn, rtol=1e-5, atol=1e-5)
    assert torch.equal(gpu.opened.cpu(), franka.opened)
    franka.reset()


def test_actions_move_the_targets_by_small_steps_within_the_limits(franka):
    franka.reset()
    start = franka.dof_targets.clone()
    action = torch.tensor([1.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0]).expand(NUM_ENVS, 9)
    franka.apply_actions(action)
    step = torch.tensor([7.5 / 60] * 7 + [0.75 / 60] * 2)
    expected = torch.clamp(start + step * action, torch.tensor(LOWER), torch.tensor(UPPER))
    torch.testing.assert_close(franka.dof_targets, expected)
    torch.testing.assert_close(franka.sim.ctrl, expected)
    for _ in range(100):  # pushed on: held at the limits
        franka.apply_actions(action)
    assert torch.allclose(franka.dof_targets[:, 0], torch.tensor(UPPER[0]))
    assert torch.allclose(franka.dof_targets[:, 7], torch.tensor(0.04)) and torch.equal(
        franka.dof_targets[:, 8], torch.zeros(NUM_ENVS)
    )


def scene(*, franka_grasp, drawer_grasp, left, right, opening, forward=(-1.0, 0, 0), up=(0, 0, 1.0)) -> Scene:
    rows = len(franka_grasp)

    def t(values):
        return torch.tensor(values, dtype=torch.float32).reshape(rows, -1).squeeze(-1)

    inward, drawer_up = t([[-1.0, 0, 0]] * rows), t([[0, 0, 1.0]] * rows)
    return Scene(
        t(franka_grasp), t(drawer_grasp), t([forward] * rows), t([up] * rows), inward, drawer_up,
        t(left), t(right), t(opening),
    )  # fmt: skip


def test_reward_terms_as_upstream_computes_them():
    handle = [0.3515, 0.01, 0.7172]
    # World 0: gripper 1 cm from the handle, fingers 2 cm above and 1.5 cm below it, drawer 0.25 m open.
    # World 1: 0.5 m away, fingers both above, drawer closed, gripper turned upside down.
    # World 2: as world 0 but a finger passed 5 cm behind the handle: -1.
    # World 3: drawer open past 0.39 m with the fingers around the handle: opened.
    s = scene(
        franka_grasp=[[0.3615, 0.01, 0.7172], [0.8515, 0.01, 0.7172], [0.3615, 0.01, 0.7172], [0.3615, 0.01, 0.7172]],
        drawer_grasp=[handle] * 4,
        left=[[0.36, 0.01, 0.7372], [0.85, 0.01, 0.80], [0.30, 0.01, 0.7372], [0.36, 0.01, 0.7372]],
        right=[[0.36, 0.01, 0.7022], [0.85, 0.01, 0.75], [0.36, 0.01, 0.7022], [0.36, 0.01, 0.7022]],
        opening=[0.25, 0.0, 0.25, 0.395],
    )
    s = s._replace(gripper_up=torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [0, 0, 1.0], [0, 0, 1.0]]))
    actions = torch.zeros(4, 9)
    actions[1] = 1.0
    reward, opened = franka_cabinet_reward(s, actions, SCALES)

    def by_hand(d, *, rot, around, finger, opening, penalty):
        dist = (1 / (1 + d**2)) ** 2 * (2 if d <= 0.02 else 1)
        total = 2 * dist + 0.5 * rot + 0.25 * around + 7.5 * opening * (around + 1) + 5 * finger - 0.01 * penalty
        return total + 0.5 * (opening > 0.01) + around * (opening > 0.2) + 2 * around * (opening > 0.39)

    finger = (0.04 - 0.02) + (0.04 - 0.015)
    expected = [
        by_hand(0.01, rot=0.5 * (1 + 1), around=0.5, finger=finger, opening=0.25, penalty=0.0),
        by_hand(0.5, rot=0.5 * (1 - 1), around=0.0, finger=0.0, opening=0.0, penalty=9.0),
        -1.0,
        by_hand(0.01, rot=1.0, around=0.5, finger=finger, opening=0.395, penalty=0.0),
    ]
    torch.testing.assert_close(reward, torch.tensor(expected, dtype=torch.float32))
    assert opened.tolist() == [False, False, False, True]


def test_an_opened_drawer_ends_the_episode_and_resets_the_world(franka):
    franka.reset()
    franka.sim.qpos[1, 9] = 0.395  # world 1's drawer pulled open
    _, _, done, extras = franka.step(torch.zeros(NUM_ENVS, 9))
    assert done.tolist() == [False, True, False, False] and not extras["time_outs"].any()
    assert franka.sim.qpos[1, 9] == 0.0 and franka.progress_buf[1] == 0, "reset at once"


def test_reset_puts_the_arm_near_its_default_pose_at_rest(franka):
    franka.sim.qvel.fill_(1.0)
    franka.sim.qpos[:, 9] = 0.2
    franka.reset()
    q = franka.sim.qpos[:, :9]
    default, lower, upper = torch.tensor(DEFAULT), torch.tensor(LOWER), torch.tensor(UPPER)
    assert ((q - default).abs() <= 0.125 + 1e-6).all() and (q >= lower).all() and (q <= upper).all()
    assert not torch.allclose(q[0, :7], q[1, :7]), "each world its own noise"
    assert torch.equal(franka.sim.qvel, torch.zeros_like(franka.sim.qvel)) and torch.equal(
        franka.sim.qpos[:, 9], torch.zeros(NUM_ENVS)
    )
    torch.testing.assert_close(franka.dof_targets, q)


def test_episodes_time_out_at_the_episode_length():
    task = make_cpu_task("FrankaCabinet", 2, "task.env.episodeLength=5")
    task.reset()
    ends = [task.step(torch.zeros(2, 9))[3]["time_outs"].tolist() for _ in range(5)]
    assert ends == [[False, False]] * 3 + [[True, True], [False, False]]


def test_grasp_frames_are_upstreams_at_the_default_pose(franka):
    """The task's grasp points from the bodies' poses: MuJoCo's own kinematics at the default pose put them where
    the fact sheet's forward kinematics of the URDF does."""
    model = franka.sim.mj_model
    data = mujoco.MjData(model)
    data.qpos[:9] = DEFAULT
    mujoco.mj_kinematics(model, data)
    franka.body_pos[:] = torch.tensor(data.xpos, dtype=torch.float32)
    franka.body_quat[:] = torch.tensor(data.xquat, dtype=torch.float32)
    franka_grasp, drawer_grasp, turn = franka.grasp_frames()
    assert torch.allclose(franka_grasp, torch.tensor([0.784, 0.082, 0.820]), atol=1e-3)
    assert torch.allclose(drawer_grasp, torch.tensor([0.3515, 0.01, 0.7172]))
    hand = torch.tensor(data.body("panda_hand").xquat, dtype=torch.float32)
    assert torch.allclose(turn, hand.expand(NUM_ENVS, 4), atol=1e-6), "the grasp frame turns with the hand"
    franka.reset()


def test_a_grasp_of_the_handle_pulls_the_drawer_open(franka):
    """The model can do what the task asks: with the gripper placed at the handle by inverse kinematics (fingers
    open, pointing into the drawer, opening vertically), closing the fingers grips the bar, and drawing the arm
    back pulls the drawer open past 0.39 m. Plain MuJoCo on the task's own model."""
    model = franka.sim.mj_model
    data = mujoco.MjData(model)
    link7 = model.body("panda_link7").id
    hand_turn = np.array([[np.sqrt(0.5), np.sqrt(0.5), 0], [-np.sqrt(0.5), np.sqrt(0.5), 0], [0, 0, 1]])  # Rz(-pi/4)
    # The grasp frame wanted: its z (the approach) into the drawer (-x), its y (the fingers' opening) up.
    wanted = np.stack([[0, -1, 0], [0, 0, 1], [-1, 0, 0]], axis=1).astype(float)
    bar = np.array([0.0515 + 0.3038, 0.0, 0.7172 + 0.0095])  # the handle bar's centre, drawer closed

    def arm_angles(start, grip_point):
        """Damped least squares on the fingertips' midpoint (3.5 cm past the finger origins) and the frame."""
        ik = mujoco.MjData(model)
        ik.qpos[:7] = start
        for _ in range(100):
            mujoco.mj_kinematics(model, ik)
            mujoco.mj_comPos(model, ik)
            rotation = ik.xmat[link7].reshape(3, 3)
            point = ik.xpos[link7] + rotation @ [0.0, 0.0, 0.1654 + 0.035]
            turn = wanted @ (rotation @ hand_turn).T
            error = np.concatenate([grip_point - point, 0.5 * (turn - turn.T)[[2, 0, 1], [1, 2, 0]]])
            jac_pos, jac_rot = np.zeros((3, model.nv)), np.zeros((3, model.nv))
            mujoco.mj_jac(model, ik, jac_pos, jac_rot, point, link7)
            jac = np.vstack([jac_pos[:, :7], jac_rot[:, :7]])
            step = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), error)
            ik.qpos[:7] = np.clip(ik.qpos[:7] + step, model.jnt_range[:7, 0], model.jnt_range[:7, 1])
        return ik.qpos[:7].copy()

    def hold(arm, fingers, steps):
        data.ctrl[:7], data.ctrl[7:9] = arm, fingers
        for _ in range(steps):
            mujoco.mj_step(model, data)

    arm = arm_angles(np.array(DEFAULT[:7]), bar + [0.05, 0, 0])
    data.qpos[:7], data.qpos[7:9] = arm, 0.04
    hold(arm, 0.04, 120)
    arm = arm_angles(arm, bar)
    hold(arm, 0.04, 120)
    hold(arm, 0.0, 120)  # close on the bar
    touching = {model.geom(g).name for c in data.contact[: data.ncon] for g in (c.geom1, c.geom2)}
    assert {"leftfinger", "rightfinger", "handle_bar"} <= touching, touching
    opened = 0.0
    for step in range(1, 49):  # draw the gripper back 1 cm at a time, past where the drawer stops (0.4 m)
        arm = arm_angles(arm, bar + [0.01 * step, 0, 0])
        hold(arm, 0.0, 8)
        opened = max(opened, data.qpos[9])
    assert opened > 0.39
