"""Ant: a four-legged robot learns to run towards a target 1000 m away along +x (IsaacGymEnvs' Ant)."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.sim.mjwarp import MjWarpSim, load_mjcf
from harness.tasks.rotations import basis_x_and_up, quat_rotate_inverse, roll_and_yaw, wrap_angle
from harness.tasks.vec_task import VecTask

ASSET = Path(__file__).parent / "assets" / "ant.xml"
TARGET_XY = (1000.0, 0.0)
START_HEIGHT = 0.44
# Contact pool and constraint rows per world, sized for 9 geoms on a plane (pyramidal cones, 8 limits).
NCONMAX, NJMAX = 16, 96


class Ant(VecTask):
    """60 observations, 8 actions; the reward and resets of IsaacGymEnvs' Ant (see spec/isaacgymenvs.md)."""

    num_obs = 60
    num_actions = 8
    used_env_keys = frozenset(
        {
            "numEnvs",
            "episodeLength",
            "clipActions",
            "powerScale",
            "controlFrequencyInv",
            "headingWeight",
            "upWeight",
            "actionsCost",
            "energyCost",
            "dofVelocityScale",
            "contactForceScale",
            "jointsAtLimitCost",
            "deathCost",
            "terminationHeight",
        }
    )

    def __init__(self, cfg: dict, sim_device: str, rl_device: str) -> None:
        super().__init__(cfg, sim_device, rl_device)
        env, sim = cfg["env"], cfg["sim"]
        self.reward_scales = {
            key: float(env[key])
            for key in ("headingWeight", "upWeight", "actionsCost", "energyCost", "jointsAtLimitCost", "deathCost")
        }
        self.dof_vel_scale = float(env["dofVelocityScale"])
        self.contact_force_scale = float(env["contactForceScale"])
        self.termination_height = float(env["terminationHeight"])
        self.dt = float(sim["dt"])
        model = load_mjcf(ASSET, sim)
        model.actuator_gear[:, 0] *= float(env["powerScale"])  # torque = action x gear (15) x powerScale
        self.sim = MjWarpSim(
            model,
            num_worlds=self.num_envs,
            device=sim_device,
            nconmax=NCONMAX,
            njmax=NJMAX,
            substeps=int(sim["substeps"]) * int(env["controlFrequencyInv"]),
        )
        limits = torch.tensor(self.sim.mj_model.jnt_range[1:], dtype=torch.float32, device=self.device)
        self.dof_lower, self.dof_upper = limits[:, 0], limits[:, 1]
        self.default_dof_pos = torch.zeros(self.num_actions, device=self.device).clamp(self.dof_lower, self.dof_upper)
        self.start_root = torch.tensor([0, 0, START_HEIGHT, 1, 0, 0, 0], dtype=torch.float32, device=self.device)
        self.target_xy = torch.tensor(TARGET_XY, device=self.device)
        # Set from the state by every compute_observations(), so a reset env starts from its start pose.
        self.potentials = torch.zeros(self.num_envs, device=self.device)
        self.prev_potentials = torch.zeros(self.num_envs, device=self.device)

    def compute_observations(self) -> None:
        qpos, qvel = self.sim.qpos, self.sim.qvel
        torso_xy, torso_quat = qpos[:, :2], qpos[:, 3:7]
        to_target = self.target_xy - torso_xy
        self.prev_potentials.copy_(self.potentials)
        self.potentials.copy_(-torch.linalg.norm(to_target, dim=-1) / self.dt)
        heading_vec, up_proj = basis_x_and_up(torso_quat)
        target_dir = to_target / torch.linalg.norm(to_target, dim=-1, keepdim=True)
        heading_proj = (heading_vec[:, :2] * target_dir).sum(-1)
        roll, yaw = roll_and_yaw(torso_quat)
        angle_to_target = wrap_angle(torch.atan2(to_target[:, 1], to_target[:, 0]) - yaw)
        dof_pos = qpos[:, 7:]
        dof_pos_scaled = (2 * dof_pos - self.dof_upper - self.dof_lower) / (self.dof_upper - self.dof_lower)
        torch.cat(
            (
                qpos[:, 2:3],
                quat_rotate_inverse(torso_quat, qvel[:, :3]),  # linear velocity, torso frame
                qvel[:, 3:6],  # a free joint's angular velocity is already in the torso frame
                yaw[:, None],
                roll[:, None],
                angle_to_target[:, None],
                up_proj[:, None],
                heading_proj[:, None],
                dof_pos_scaled,
                qvel[:, 6:] * self.dof_vel_scale,
                self.sim.sensordata * self.contact_force_scale,
                self.actions,
            ),
            dim=-1,
            out=self.obs_buf,
        )

    def compute_reward(self) -> torch.Tensor:
        obs, s = self.obs_buf, self.reward_scales
        heading_proj, up_proj = obs[:, 11], obs[:, 10]
        heading = torch.where(heading_proj > 0.8, s["headingWeight"], s["headingWeight"] * heading_proj / 0.8)
        up = torch.where(up_proj > 0.93, s["upWeight"], 0.0)
        actions_cost = (self.actions**2).sum(-1)
        energy_cost = (self.actions * obs[:, 20:28]).abs().sum(-1)
        at_limit = (obs[:, 12:20].abs() > 0.99).sum(-1)
        progress = self.potentials - self.prev_potentials
        reward = (
            progress
            + 0.5
            + up
            + heading
            - s["actionsCost"] * actions_cost
            - s["energyCost"] * energy_cost
            - s["jointsAtLimitCost"] * at_limit
        )
        fell = obs[:, 0] < self.termination_height
        self.rew_buf.copy_(torch.where(fell, s["deathCost"], reward))
        return fell

    def reset_envs(self, mask: torch.Tensor) -> None:
        self.sim.reset(mask)
        n, dev = self.num_envs, self.device
        dof_pos = self.default_dof_pos + torch.empty(n, self.num_actions, device=dev).uniform_(-0.2, 0.2)
        dof_pos = dof_pos.clamp(self.dof_lower, self.dof_upper)
        dof_vel = torch.empty(n, self.num_actions, device=dev).uniform_(-0.1, 0.1)
        start_qpos = torch.cat((self.start_root.expand(n, 7), dof_pos), dim=-1)
        start_qvel = torch.cat((torch.zeros(n, 6, device=dev), dof_vel), dim=-1)
        rows = mask[:, None]
        self.sim.qpos.copy_(torch.where(rows, start_qpos, self.sim.qpos))
        self.sim.qvel.copy_(torch.where(rows, start_qvel, self.sim.qvel))
        self.actions.masked_fill_(rows, 0.0)
        self.progress_buf.masked_fill_(mask, 0)
