"""Humanoid: a 21-joint humanoid learns to run towards a target 1000 m away along +x (IsaacGymEnvs' Humanoid)."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.tasks.locomotion import LOCOMOTION_ENV_KEYS, Locomotion

# Upstream normalizes the gear-weighted costs by its largest motor gear (the hips' 135).
MAX_MOTOR_GEAR = 135.0


class Humanoid(Locomotion):
    """108 observations, 21 actions; IsaacGymEnvs' reward and resets (isaacgymenvs/tasks/humanoid.py)."""

    num_obs = 108
    gpu_bytes_per_env = 141 * 1024  # 1.59 GiB at 4096 envs, 3.24 GiB at 16384 (2026-11-24, H100)
    num_actions = 21
    used_env_keys = LOCOMOTION_ENV_KEYS | {"angularVelocityScale"}
    asset = Path(__file__).parent / "assets" / "humanoid.xml"
    start_height = 1.34
    alive_reward = 2.0
    # Random actions reach about 4 contacts and 49 constraint rows per world; twice that for poses a policy finds.
    nconmax, njmax = 16, 96

    def __init__(self, cfg: dict, sim_device: str, rl_device: str) -> None:
        self.angular_velocity_scale = float(cfg["env"]["angularVelocityScale"])
        super().__init__(cfg, sim_device, rl_device)
        self.cost_weights = self.motor_gear / MAX_MOTOR_GEAR

    def compute_observations(self) -> None:
        scale = self.contact_force_scale
        torch.cat(
            (
                *self.torso_and_joint_observations(),
                self.sim.qfrc_actuator[:, 6:] * scale,  # motor torques: upstream's DOF force sensors
                self.sim.sensordata * scale,  # force, torque of the right then the left foot
                self.actions,
            ),
            dim=-1,
            out=self.obs_buf,
        )

    def compute_reward(self) -> torch.Tensor:
        energy_cost = ((self.actions * self.observed_dof_vel()).abs() * self.cost_weights).sum(-1)
        # Graded: 0 at 98% of a joint's half-range, 1 at the limit, weighted by the joint's gear.
        beyond = (self.observed_dof_pos().abs() - 0.98).clamp(min=0.0) / 0.02
        return self.finish_reward(energy_cost, (beyond * self.cost_weights).sum(-1))
