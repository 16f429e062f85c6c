"""What Ant and Humanoid share: a free-floating torso that runs towards a target 1000 m away along +x.

The shared parts follow IsaacGymEnvs' Ant and Humanoid (isaacgymenvs/tasks/ant.py, humanoid.py): the
potential-based progress reward, the up and heading bonuses, the torso observations, the start pose and the
joint randomization at reset.
Each task adds its own observation tail, costs and constants.
"""

from __future__ import annotations

from pathlib import Path

import torch
import warp as wp

from harness.sim.mjwarp import load_mjcf
from harness.tasks import locomotion_kernels as kernels
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
    observe_torques = False  # the motors' torques after the joints' velocities (Humanoid)
    graded_limits = False  # joints-at-limit cost graded from 98% of the range (Humanoid) or counted past 99% (Ant)
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
        self.dof_lower, self.dof_upper = limits[:, 0].contiguous(), limits[:, 1].contiguous()
        self.default_dof_pos = torch.zeros(self.num_actions, device=self.device).clamp(self.dof_lower, self.dof_upper)
        self.start_root = torch.tensor([0, 0, self.start_height, 1, 0, 0, 0], dtype=torch.float32, device=self.device)
        # Set from the state by every compute_observations(), so a reset env starts from its start pose.
        self.potentials = torch.zeros(self.num_envs, device=self.device)
        self.prev_potentials = torch.zeros(self.num_envs, device=self.device)
        self.cost_weights = torch.ones(self.num_actions, device=self.device)
        self.fell = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        # The kernels' views of the buffers they read and write, made once (each buffer is updated in place).
        names = ("obs_buf", "rew_buf", "actions", "potentials", "prev_potentials", "cost_weights", "fell")
        self._wp = {name: wp.from_torch(getattr(self, name)) for name in (*names, "dof_lower", "dof_upper")}

    def compute_observations(self) -> None:
        """IsaacGymEnvs' layout: torso (height, linear velocity in the torso frame, angular velocity, yaw, roll, angle
        to the target, up and heading projections), joint positions scaled to [-1, 1] over each range and velocities
        (times dofVelocityScale), the motors' torques (Humanoid: upstream's DOF force sensors), the feet's force
        sensors (both times contactForceScale), the actions. Also moves the potentials on by one.

        The angle to the target is atan2 of the y and x differences. Upstream's Humanoid uses z and x
        (upstream's target-angle quirk); with the target 1000 m away both are within 0.01 rad of each other
        for any torso within 10 m of the x axis, so the observation means the same to a policy.
        """
        data, scale = self.sim.data, self.contact_force_scale
        self.sim.launch(
            kernels.observe,
            self.num_envs,
            [data.qpos, data.qvel, data.qfrc_actuator, data.sensordata, self._wp["actions"], self._wp["dof_lower"]]
            + [self._wp["dof_upper"], wp.vec2(*TARGET_XY), self.dt, self.angular_velocity_scale, self.dof_vel_scale]
            + [scale, self.observe_torques, self._wp["potentials"], self._wp["prev_potentials"], self._wp["obs_buf"]],
        )

    def compute_reward(self) -> torch.Tensor:
        """Write the reward to rew_buf and return where the torso fell (its reward is deathCost there).

        Reward: speed towards the target + staying alive + being upright + facing the target, minus the
        actions', energy and joints-at-limit costs (each joint weighted by cost_weights).
        """
        s, w = self.reward_scales, self._wp
        self.sim.launch(
            kernels.reward,
            self.num_envs,
            [w["obs_buf"], w["actions"], w["potentials"], w["prev_potentials"], w["cost_weights"], self.graded_limits]
            + [self.alive_reward, s["headingWeight"], s["upWeight"], s["actionsCost"], s["energyCost"]]
            + [s["jointsAtLimitCost"], s["deathCost"], self.termination_height, w["rew_buf"], w["fell"]],
        )
        return self.fell

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
