"""Ant: a four-legged robot learns to run towards a target 1000 m away along +x (IsaacGymEnvs' Ant)."""

from __future__ import annotations

from pathlib import Path

from harness.tasks.locomotion import LOCOMOTION_ENV_KEYS, Locomotion


class Ant(Locomotion):
    """60 observations, 8 actions; the reward and resets of IsaacGymEnvs' Ant (upstream: isaacgymenvs/tasks/ant.py)."""

    num_obs = 60
    gpu_bytes_per_env = 76 * 1024  # 0.99 GiB at 4096 envs, 1.88 GiB at 16384 (2026-11-24, H100)
    num_actions = 8
    used_env_keys = LOCOMOTION_ENV_KEYS | {"controlFrequencyInv"}
    asset = Path(__file__).parent / "assets" / "ant.xml"
    start_height = 0.44
    alive_reward = 0.5
    # Sized for 9 geoms on a plane (pyramidal cones, 8 limits).
    nconmax, njmax = 16, 96
