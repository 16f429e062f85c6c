"""Humanoid: a 21-joint humanoid learns to run towards a target 1000 m away along +x (IsaacGymEnvs' Humanoid)."""

from __future__ import annotations

from pathlib import Path

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
    observe_torques = True  # after the joints' velocities: upstream's DOF force sensors
    graded_limits = True
    # Random actions reach about 4 contacts and 49 constraint rows per world; twice that for poses a policy finds.
    nconmax, njmax = 16, 96

    def __init__(self, cfg: dict, sim_device: str, rl_device: str) -> None:
        self.angular_velocity_scale = float(cfg["env"]["angularVelocityScale"])
        super().__init__(cfg, sim_device, rl_device)
        self.cost_weights.copy_(self.motor_gear / MAX_MOTOR_GEAR)  # in place: the reward kernel's view of it
