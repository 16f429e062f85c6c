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
from harness.tasks import franka_cabinet_kernels as kernels
from harness.tasks.vec_task import VecTask

ASSET = Path(__file__).parent / "assets" / "franka_cabinet.xml"
FRANKA_JOINTS = kernels.FRANKA_JOINTS  # the arm's 7 joints and its 2 fingers, first in qpos
# Upstream integrates the targets with a hard-coded 1/60 s, and moves the fingers at a tenth of the arm's rate.
TARGET_DT = 1.0 / 60.0
FINGER_SPEED = 0.1
# The grasp frames (upstream's, with its axis-1 offsets): in link7's frame, the finger origins' midpoint plus
# 0.04 m along link7's y, turned as the hand is (-45 degrees about z); in the drawer's frame, (0.3, 0.01, 0).
FRANKA_GRASP_OFFSET = (0.0, 0.04, 0.1654)
FRANKA_GRASP_TURN = (0.9238795325, 0.0, 0.0, -0.3826834324)  # w, x, y, z: -pi/4 about z
DRAWER_GRASP_OFFSET = (0.3, 0.01, 0.0)
# The gripper's forward and up axes are the grasp frame's z and y (franka_cabinet_kernels.grasp_frames).
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


REWARD_SCALE_KEYS = ("dist", "rot", "aroundHandle", "open", "fingerDist", "actionPenalty")


def reward_inputs(scene: Scene, actions: torch.Tensor, scales: torch.Tensor, finger_dist_offset: float = 0.04) -> list:
    """The reward kernel's inputs: the scene's tensors as Warp arrays, `scales` in REWARD_SCALE_KEYS' order."""
    arrays = [wp.from_torch(t, dtype=wp.vec3) for t in scene[:8]]
    return [*arrays, wp.from_torch(scene.drawer_opening), wp.from_torch(actions), wp.from_torch(scales)] + [
        finger_dist_offset,
        OPENED,
    ]


def franka_cabinet_reward(
    scene: Scene, actions: torch.Tensor, scales: dict[str, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's compute_franka_reward: (reward, opened) per world, by the task's reward kernel on the tensors'
    device."""
    n, device = len(actions), actions.device
    reward, opened = torch.empty(n, device=device), torch.empty(n, dtype=torch.bool, device=device)
    scale_values = torch.tensor([scales[key] for key in REWARD_SCALE_KEYS], device=device)
    inputs = reward_inputs(scene, actions, scale_values)
    wp.launch(kernels.reward, n, [*inputs, wp.from_torch(reward), wp.from_torch(opened)], device=str(device))
    return reward, opened


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
            key: float(env[f"{key}{'Scale' if key == 'actionPenalty' else 'RewardScale'}"]) for key in REWARD_SCALE_KEYS
        }
        model = load_mjcf(ASSET, sim)
        self.sim = self.make_sim(model, substeps=int(sim["substeps"]))
        joints = [model.joint(f"panda_joint{i}").id for i in range(1, 8)]
        joints += [model.joint("panda_finger_joint1").id, model.joint("panda_finger_joint2").id]
        assert [int(model.jnt_qposadr[j]) for j in joints] == list(range(FRANKA_JOINTS)), "Franka first in qpos"
        limits = torch.tensor(model.jnt_range[joints], dtype=torch.float32, device=dev)
        self.dof_lower, self.dof_upper = limits[:, 0].contiguous(), limits[:, 1].contiguous()
        self.default_dof_pos = torch.tensor(self.default_dof_pos_list, device=dev)
        speed = torch.ones(FRANKA_JOINTS, device=dev)
        speed[7:] = FINGER_SPEED
        self.target_step = speed * TARGET_DT * self.action_scale
        drawer = model.joint("drawer_top_joint")
        self.drawer_qpos, self.drawer_qvel = int(drawer.qposadr[0]), int(drawer.dofadr[0])
        self.link7, self.drawer = model.body("panda_link7").id, model.body("drawer_top").id
        self.left_finger, self.right_finger = model.body("panda_leftfinger").id, model.body("panda_rightfinger").id
        self.body_pos, self.body_quat = wp.to_torch(self.sim.data.xpos), wp.to_torch(self.sim.data.xquat)
        self.dof_targets = torch.zeros(self.num_envs, FRANKA_JOINTS, device=dev)
        self.opened = torch.zeros(self.num_envs, dtype=torch.bool, device=dev)
        self._make_scene_buffers()

    def _make_scene_buffers(self) -> None:
        """The scene the kernels write and read (its drawer axes constant), and their inputs, made once."""
        n, dev = self.num_envs, self.device

        def rows(width, values=None):
            if values is None:
                return torch.zeros(n, width, device=dev)
            return torch.tensor(values, device=dev).repeat(n, 1)

        self.franka_turn = rows(4)
        self._scene = Scene(
            rows(3), rows(3), rows(3), rows(3), rows(3, DRAWER_INWARD), rows(3, DRAWER_UP), rows(3), rows(3),
            self.sim.qpos[:, self.drawer_qpos],
        )  # fmt: skip
        franka_grasp, drawer_grasp, forward, up, _, _, left, right = (
            wp.from_torch(t, dtype=wp.vec3) for t in self._scene[:8]
        )
        bodies = wp.vec4i(self.link7, self.drawer, self.left_finger, self.right_finger)
        self._frames_inputs = [self.sim.data.xpos, self.sim.data.xquat, bodies, wp.vec3(*FRANKA_GRASP_OFFSET)] + [
            wp.vec4(*FRANKA_GRASP_TURN), wp.vec3(*DRAWER_GRASP_OFFSET), franka_grasp, drawer_grasp,
            wp.from_torch(self.franka_turn, dtype=wp.vec4), forward, up, left, right,
        ]  # fmt: skip
        self._observe_inputs = [self.sim.data.qpos, self.sim.data.qvel, franka_grasp, drawer_grasp] + [
            wp.from_torch(self.dof_lower), wp.from_torch(self.dof_upper), self.dof_vel_scale,
            wp.vec2i(self.drawer_qpos, self.drawer_qvel), self.clip_obs, wp.from_torch(self.obs_buf),
        ]  # fmt: skip
        self._reward_scales = torch.tensor([self.reward_scales[key] for key in REWARD_SCALE_KEYS], device=dev)
        self._reward_inputs = reward_inputs(self._scene, self.actions, self._reward_scales) + [
            wp.from_torch(self.rew_buf), wp.from_torch(self.opened),
        ]  # fmt: skip

    def apply_actions(self, actions: torch.Tensor) -> None:
        """Move the joint targets by the actions (upstream's incremental position control), within the limits."""
        targets = torch.clamp(self.dof_targets + self.target_step * actions, self.dof_lower, self.dof_upper)
        self.dof_targets.copy_(targets)
        self.sim.ctrl.copy_(targets)

    def grasp_frames(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """World positions of the Franka's and the drawer's grasp points, and the Franka grasp frame's rotation."""
        self.sim.launch(kernels.grasp_frames, self.num_envs, self._frames_inputs)
        return self._scene.franka_grasp, self._scene.drawer_grasp, self.franka_turn

    def compute_observations(self) -> None:
        """The Franka's joints scaled to [-1, 1] and velocities, the handle seen from the gripper, the drawer's
        opening and speed, each clipped to +-clipObservations."""
        self.grasp_frames()
        self.sim.launch(kernels.observe, self.num_envs, self._observe_inputs)

    def compute_reward(self) -> torch.Tensor:
        # The scene is the one compute_observations() left: a step observes the same worlds just before.
        self.sim.launch(kernels.reward, self.num_envs, self._reward_inputs)
        return self.opened

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
