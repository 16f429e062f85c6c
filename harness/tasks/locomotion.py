"""What Ant and Humanoid share: a free-floating torso that runs towards a target 1000 m away along +x.

The shared parts follow IsaacGymEnvs' Ant and Humanoid (isaacgymenvs/tasks/ant.py, humanoid.py): the
potential-based progress reward, the up and heading bonuses, the torso observations, the start pose and the
joint randomization at reset.
Each task adds its own observation tail, costs and constants.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness.sim.mjwarp import load_mjcf
from harness.tasks.rotations import basis_x_and_up, quat_rotate_inverse, roll_and_yaw, wrap_angle
from harness.tasks.vec_task import VecTask

TARGET_XY = (1000.0, 0.0)
# Reward and cost weights read from env.*; both tasks name them the same way.
REWARD_KEYS = ("headingWeight", "upWeight", "actionsCost", "energyCost", "jointsAtLimitCost", "deathCost")
LOCOMOTION_ENV_KEYS = frozenset(
    {"numEnvs", "episodeLength", "clipActions", "powerScale", "dofVelocityScale", "contactForceScale"}
    | {"terminationHeight", *REWARD_KEYS}
)


class Locomotion(VecTask):
    """A torso on a free joint, motors on every other joint (one action each), force sensors on the feet."""

    asset: Path
    start_height: float
    alive_reward: float
    angular_velocity_scale = 1.0
    episode_buffers = (*VecTask.episode_buffers, "potentials", "prev_potentials")

    def __init__(self, cfg: dict, sim_device: str, rl_device: str) -> None:
        super().__init__(cfg, sim_device, rl_device)
        env, sim = cfg["env"], cfg["sim"]
        self.reward_scales = {key: float(env[key]) for key in REWARD_KEYS}
        self.dof_vel_scale = float(env["dofVelocityScale"])
        self.contact_force_scale = float(env["contactForceScale"])
        self.termination_height = float(env["terminationHeight"])
        self.dt = float(sim["dt"])
        model = load_mjcf(self.asset, sim)
        # The costs weigh each joint by its motor's gear; powerScale scales the torques only.
        self.motor_gear = torch.tensor(model.actuator_gear[:, 0], dtype=torch.float32, device=self.device)
        model.actuator_gear[:, 0] *= float(env["powerScale"])  # torque = action x gear x powerScale
        self.sim = self.make_sim(model, substeps=int(sim["substeps"]) * int(env.get("controlFrequencyInv", 1)))
        limits = torch.tensor(self.sim.mj_model.jnt_range[1:], dtype=torch.float32, device=self.device)
        self.dof_lower, self.dof_upper = limits[:, 0], limits[:, 1]
        self.default_dof_pos = torch.zeros(self.num_actions, device=self.device).clamp(self.dof_lower, self.dof_upper)
        self.start_root = torch.tensor([0, 0, self.start_height, 1, 0, 0, 0], dtype=torch.float32, device=self.device)
        self.target_xy = torch.tensor(TARGET_XY, device=self.device)
        # Set from the state by every compute_observations(), so a reset env starts from its start pose.
        self.potentials = torch.zeros(self.num_envs, device=self.device)
        self.prev_potentials = torch.zeros(self.num_envs, device=self.device)

    def torso_and_joint_observations(self) -> list[torch.Tensor]:
        """Observation entries 0:12 (torso) and the joints' scaled positions and velocities; updates potentials.

        The angle to the target is atan2 of the y and x differences. Upstream's Humanoid uses z and x
        (upstream's target-angle quirk); with the target 1000 m away both are within 0.01 rad of each other
        for any torso within 10 m of the x axis, so the observation means the same to a policy.
        """
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
        return [
            qpos[:, 2:3],
            quat_rotate_inverse(torso_quat, qvel[:, :3]),  # linear velocity, torso frame
            qvel[:, 3:6] * self.angular_velocity_scale,  # a free joint's angular velocity is in the torso frame
            yaw[:, None],
            roll[:, None],
            angle_to_target[:, None],
            up_proj[:, None],
            heading_proj[:, None],
            dof_pos_scaled,
            qvel[:, 6:] * self.dof_vel_scale,
        ]

    # Columns of the observation (IsaacGymEnvs' layout, torso_and_joint_observations) that rewards read.
    HEIGHT, UP_PROJ, HEADING_PROJ, DOF_POS = 0, 10, 11, 12

    def observed_dof_pos(self) -> torch.Tensor:
        """The joints' positions as observed: scaled to [-1, 1] over each joint's range."""
        return self.obs_buf[:, self.DOF_POS : self.DOF_POS + self.num_actions]

    def observed_dof_vel(self) -> torch.Tensor:
        """The joints' velocities as observed (times dofVelocityScale)."""
        start = self.DOF_POS + self.num_actions
        return self.obs_buf[:, start : start + self.num_actions]

    def finish_reward(self, energy_cost: torch.Tensor, at_limit_cost: torch.Tensor) -> torch.Tensor:
        """Write the reward to rew_buf and return where the torso fell (its reward is deathCost there).

        Reward: speed towards the target + staying alive + being upright + facing the target, minus the
        actions', energy and joints-at-limit costs (the last two as each task weighs them).
        """
        obs, s = self.obs_buf, self.reward_scales
        heading_proj, up_proj = obs[:, self.HEADING_PROJ], obs[:, self.UP_PROJ]
        heading = torch.where(heading_proj > 0.8, s["headingWeight"], s["headingWeight"] * heading_proj / 0.8)
        up = torch.where(up_proj > 0.93, s["upWeight"], 0.0)
        reward = (
            self.potentials
            - self.prev_potentials
            + self.alive_reward
            + up
            + heading
            - s["actionsCost"] * (self.actions**2).sum(-1)
            - s["energyCost"] * energy_cost
            - s["jointsAtLimitCost"] * at_limit_cost
        )
        fell = obs[:, self.HEIGHT] < self.termination_height
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
