"""FrankaCabinet: a Franka Panda arm opens the top drawer of a cabinet by its handle (IsaacGymEnvs' FrankaCabinet).

Upstream: isaacgymenvs/tasks/franka_cabinet.py with FrankaCabinet.yaml. Actions move the 9 joint targets by small
steps (the arm up to 0.125 rad, each finger up to 0.0125 m a step); the reward draws the gripper to the handle,
aligns it, rewards fingers on both sides of the handle and, most, the drawer's opening. An episode ends when the
drawer is open past 0.39 m or after 500 steps. Upstream's quirks are kept (see ../shared/spec, FrankaCabinet D):
both grasp offsets along axis index 1, the reward's -1 when a finger passes the handle, the 2 x around bonus
paid once because success ends the episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import warp as wp

from harness.sim.mjwarp import load_mjcf
from harness.tasks.rotations import quat_mul, quat_rotate
from harness.tasks.vec_task import VecTask

ASSET = Path(__file__).parent / "assets" / "franka_cabinet.xml"
FRANKA_JOINTS = 9
# Upstream integrates the targets with a hard-coded 1/60 s, and moves the fingers at a tenth of the arm's rate.
TARGET_DT = 1.0 / 60.0
FINGER_SPEED = 0.1
# The grasp frames (upstream's, with its axis-1 offsets): in link7's frame, the finger origins' midpoint plus
# 0.04 m along link7's y, turned as the hand is (-45 degrees about z); in the drawer's frame, (0.3, 0.01, 0).
FRANKA_GRASP_OFFSET = (0.0, 0.04, 0.1654)
FRANKA_GRASP_TURN = (0.9238795325, 0.0, 0.0, -0.3826834324)  # w, x, y, z: -pi/4 about z
DRAWER_GRASP_OFFSET = (0.3, 0.01, 0.0)
GRIPPER_FORWARD, GRIPPER_UP = (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)
DRAWER_INWARD, DRAWER_UP = (-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
OPENED = 0.39  # m: the drawer counts as open, and the episode ends


class Scene(NamedTuple):
    """What the reward reads of a step, per world: world positions (the fingers' are their bodies' origins), unit
    axes, and the top drawer's opening (its joint position, m)."""

    franka_grasp: torch.Tensor
    drawer_grasp: torch.Tensor
    gripper_forward: torch.Tensor
    gripper_up: torch.Tensor
    drawer_inward: torch.Tensor
    drawer_up: torch.Tensor
    left_finger: torch.Tensor
    right_finger: torch.Tensor
    drawer_opening: torch.Tensor


def franka_cabinet_reward(
    scene: Scene, actions: torch.Tensor, scales: dict[str, float], finger_dist_offset: float = 0.04
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's compute_franka_reward: (reward, opened) per world."""
    franka_grasp_pos, drawer_grasp_pos = scene.franka_grasp, scene.drawer_grasp
    left_finger_pos, right_finger_pos, drawer_pos = scene.left_finger, scene.right_finger, scene.drawer_opening
    d = torch.norm(franka_grasp_pos - drawer_grasp_pos, dim=-1)
    dist_reward = 1.0 / (1.0 + d**2)
    dist_reward = dist_reward * dist_reward
    dist_reward = torch.where(d <= 0.02, dist_reward * 2, dist_reward)

    forward = (scene.gripper_forward * scene.drawer_inward).sum(-1)
    up = (scene.gripper_up * scene.drawer_up).sum(-1)
    rot_reward = 0.5 * (torch.sign(forward) * forward**2 + torch.sign(up) * up**2)

    handle_z = drawer_grasp_pos[:, 2]
    around = (left_finger_pos[:, 2] > handle_z) & (right_finger_pos[:, 2] < handle_z)
    around_handle_reward = around.float() * 0.5
    finger_dist_reward = torch.where(
        around,
        (finger_dist_offset - (left_finger_pos[:, 2] - handle_z).abs())
        + (finger_dist_offset - (right_finger_pos[:, 2] - handle_z).abs()),
        torch.zeros_like(d),
    )
    open_reward = drawer_pos * (around_handle_reward + 1.0)
    action_penalty = (actions**2).sum(-1)

    reward = (
        scales["dist"] * dist_reward
        + scales["rot"] * rot_reward
        + scales["aroundHandle"] * around_handle_reward
        + scales["open"] * open_reward
        + scales["fingerDist"] * finger_dist_reward
        - scales["actionPenalty"] * action_penalty
    )
    reward = reward + 0.5 * (drawer_pos > 0.01).float()
    reward = reward + around_handle_reward * (drawer_pos > 0.2).float()
    reward = reward + 2.0 * around_handle_reward * (drawer_pos > OPENED).float()
    # A finger past the handle (into the drawer, which lies towards -x) overrides everything.
    handle_x = drawer_grasp_pos[:, 0] - finger_dist_offset
    passed = (left_finger_pos[:, 0] < handle_x) | (right_finger_pos[:, 0] < handle_x)
    reward = torch.where(passed, torch.full_like(reward, -1.0), reward)
    return reward, drawer_pos > OPENED


class FrankaCabinet(VecTask):
    """23 observations, 9 actions (joint target steps); IsaacGymEnvs' reward, ends and resets."""

    num_obs = 23
    num_actions = 9
    used_env_keys = frozenset(
        {"numEnvs", "episodeLength", "clipObservations", "clipActions", "actionScale", "dofVelocityScale"}
        | {"distRewardScale", "rotRewardScale", "aroundHandleRewardScale", "openRewardScale", "fingerDistRewardScale"}
        | {"actionPenaltyScale"}
    )
    episode_buffers = (*VecTask.episode_buffers, "dof_targets")
    # Fingers on the handle and the arm against the cabinet: a few boxes and capsules touching.
    nconmax, njmax = 32, 160
    gpu_bytes_per_env = 175 * 1024  # 1.20 GiB at 4096 envs, 3.25 GiB at 16384 (2026-11-26, H100)
    default_dof_pos_list = (1.157, -1.066, -0.155, -2.239, -1.841, 1.003, 0.469, 0.035, 0.035)

    def __init__(self, cfg: dict, sim_device: str, rl_device: str) -> None:
        env, sim = cfg["env"], cfg["sim"]
        super().__init__(cfg, sim_device, rl_device)
        dev = self.device
        self.clip_obs = float(env["clipObservations"])
        self.action_scale = float(env["actionScale"])
        self.dof_vel_scale = float(env["dofVelocityScale"])
        self.reward_scales = {
            key: float(env[f"{key}{'Scale' if key == 'actionPenalty' else 'RewardScale'}"])
            for key in ("dist", "rot", "aroundHandle", "open", "fingerDist", "actionPenalty")
        }
        model = load_mjcf(ASSET, sim)
        self.sim = self.make_sim(model, substeps=int(sim["substeps"]))
        joints = [model.joint(f"panda_joint{i}").id for i in range(1, 8)]
        joints += [model.joint("panda_finger_joint1").id, model.joint("panda_finger_joint2").id]
        assert [int(model.jnt_qposadr[j]) for j in joints] == list(range(FRANKA_JOINTS)), "Franka first in qpos"
        limits = torch.tensor(model.jnt_range[joints], dtype=torch.float32, device=dev)
        self.dof_lower, self.dof_upper = limits[:, 0], limits[:, 1]
        self.default_dof_pos = torch.tensor(self.default_dof_pos_list, device=dev)
        speed = torch.ones(FRANKA_JOINTS, device=dev)
        speed[7:] = FINGER_SPEED
        self.target_step = speed * TARGET_DT * self.action_scale
        drawer = model.joint("drawer_top_joint")
        self.drawer_qpos, self.drawer_qvel = int(drawer.qposadr[0]), int(drawer.dofadr[0])
        self.link7, self.drawer = model.body("panda_link7").id, model.body("drawer_top").id
        self.left_finger, self.right_finger = model.body("panda_leftfinger").id, model.body("panda_rightfinger").id
        self.body_pos, self.body_quat = wp.to_torch(self.sim.data.xpos), wp.to_torch(self.sim.data.xquat)

        def constant(values):
            return torch.tensor(values, dtype=torch.float32, device=dev).expand(self.num_envs, len(values))

        self.franka_grasp_offset, self.franka_grasp_turn = constant(FRANKA_GRASP_OFFSET), constant(FRANKA_GRASP_TURN)
        self.drawer_grasp_offset = constant(DRAWER_GRASP_OFFSET)
        self.gripper_axes = constant(GRIPPER_FORWARD), constant(GRIPPER_UP)
        self.drawer_axes = constant(DRAWER_INWARD), constant(DRAWER_UP)
        self.dof_targets = torch.zeros(self.num_envs, FRANKA_JOINTS, device=dev)

    def apply_actions(self, actions: torch.Tensor) -> None:
        """Move the joint targets by the actions (upstream's incremental position control), within the limits."""
        targets = torch.clamp(self.dof_targets + self.target_step * actions, self.dof_lower, self.dof_upper)
        self.dof_targets.copy_(targets)
        self.sim.ctrl.copy_(targets)

    def grasp_frames(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """World positions of the Franka's and the drawer's grasp points, and the Franka grasp frame's rotation."""
        link7_pos, link7_quat = self.body_pos[:, self.link7], self.body_quat[:, self.link7]
        franka_grasp = link7_pos + quat_rotate(link7_quat, self.franka_grasp_offset)
        franka_turn = quat_mul(link7_quat, self.franka_grasp_turn)
        # The cabinet is fixed and unturned and the drawer slides along x: its frame's axes are the world's.
        drawer_grasp = self.body_pos[:, self.drawer] + self.drawer_grasp_offset
        return franka_grasp, drawer_grasp, franka_turn

    def compute_observations(self) -> None:
        qpos, qvel = self.sim.qpos, self.sim.qvel
        franka_q = qpos[:, :FRANKA_JOINTS]
        scaled_q = 2.0 * (franka_q - self.dof_lower) / (self.dof_upper - self.dof_lower) - 1.0
        franka_grasp, drawer_grasp, _ = self.grasp_frames()
        obs = torch.cat(
            (
                scaled_q,
                qvel[:, :FRANKA_JOINTS] * self.dof_vel_scale,
                drawer_grasp - franka_grasp,
                qpos[:, self.drawer_qpos : self.drawer_qpos + 1],
                qvel[:, self.drawer_qvel : self.drawer_qvel + 1],
            ),
            dim=-1,
        )
        torch.clamp(obs, -self.clip_obs, self.clip_obs, out=self.obs_buf)

    def compute_reward(self) -> torch.Tensor:
        reward, opened = franka_cabinet_reward(self.scene(), self.actions, self.reward_scales)
        self.rew_buf.copy_(reward)
        return opened

    def scene(self) -> Scene:
        franka_grasp, drawer_grasp, franka_turn = self.grasp_frames()
        return Scene(
            franka_grasp,
            drawer_grasp,
            quat_rotate(franka_turn, self.gripper_axes[0]),
            quat_rotate(franka_turn, self.gripper_axes[1]),
            *self.drawer_axes,
            self.body_pos[:, self.left_finger],
            self.body_pos[:, self.right_finger],
            self.sim.qpos[:, self.drawer_qpos],
        )

    def reset_envs(self, mask: torch.Tensor) -> None:
        """The Franka at its default pose plus U(-0.125, 0.125) per joint (within the limits), at rest, its targets
        there; the drawer closed and still."""
        self.sim.reset(mask)
        n, dev = self.num_envs, self.device
        noise = torch.empty(n, FRANKA_JOINTS, device=dev).uniform_(-0.125, 0.125)
        dof_pos = torch.clamp(self.default_dof_pos + noise, self.dof_lower, self.dof_upper)
        rows = mask[:, None]
        qpos, qvel = self.sim.qpos, self.sim.qvel
        qpos[:, :FRANKA_JOINTS].copy_(torch.where(rows, dof_pos, qpos[:, :FRANKA_JOINTS]))
        qpos[:, self.drawer_qpos].masked_fill_(mask, 0.0)
        qvel.masked_fill_(rows, 0.0)
        self.dof_targets.copy_(torch.where(rows, dof_pos, self.dof_targets))
        self.sim.ctrl.copy_(self.dof_targets)
        self.actions.masked_fill_(rows, 0.0)
        self.progress_buf.masked_fill_(mask, 0)
