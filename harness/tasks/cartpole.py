"""Cartpole: push a cart along a rail to keep a hinged pole upright (IsaacGymEnvs' Cartpole)."""

from __future__ import annotations

import math
from pathlib import Path

import mujoco
import numpy as np
import torch

from harness.sim.mjwarp import load_mjcf
from harness.tasks.vec_task import VecTask

ASSET = Path(__file__).parent / "assets" / "cartpole.xml"
# Isaac Gym slows every link's angular velocity at this rate (1/s): AssetOptions.angular_damping's default, which
# upstream's Cartpole keeps (it sets only fix_base_link). The cart only slides; the pole is the link it damps.
ISAAC_GYM_ANGULAR_DAMPING = 0.5


POLE = 1  # the hinge: the index of its joint and of its dof


def hinge_inertia(model: mujoco.MjModel) -> float:
    """The pole's moment of inertia about its hinge (kg m^2), from its body's mass, centre and principal inertia:
    a damping of rate r on the pole's angular velocity is a hinge damping of r times it."""
    body, axis = model.jnt_bodyid[POLE], model.jnt_axis[POLE]
    rotation = np.zeros(9)
    mujoco.mju_quat2Mat(rotation, model.body_iquat[body])
    rotation = rotation.reshape(3, 3)  # principal axes, in the body's frame (where the hinge is, at its origin)
    about_centre = axis @ rotation @ np.diag(model.body_inertia[body]) @ rotation.T @ axis
    centre = model.body_ipos[body]
    return float(about_centre + model.body_mass[body] * (centre @ centre - (axis @ centre) ** 2))


class Cartpole(VecTask):
    """4 observations (cart position and velocity, pole angle and angular velocity), 1 action (force on the cart)."""

    num_obs = 4
    gpu_bytes_per_env = 7 * 1024  # 0.357 GiB at 512 envs, 0.381 GiB at 4096 (2026-11-24, H100)
    num_actions = 1
    default_episode_length = 500
    used_env_keys = frozenset({"numEnvs", "episodeLength", "resetDist", "maxEffort", "clipObservations", "clipActions"})
    # Nothing collides; the rail's limits are the only constraints.
    nconmax, njmax = 1, 4

    def __init__(self, cfg: dict, sim_device: str, rl_device: str) -> None:
        super().__init__(cfg, sim_device, rl_device)
        env, sim = cfg["env"], cfg["sim"]
        self.reset_dist = float(env["resetDist"])
        self.clip_obs = float(env["clipObservations"])
        model = load_mjcf(ASSET, sim)
        model.actuator_gear[:, 0] = float(env["maxEffort"])  # force on the cart = action x maxEffort (400 N)
        model.dof_damping[POLE] = ISAAC_GYM_ANGULAR_DAMPING * hinge_inertia(model)
        self.sim = self.make_sim(model, substeps=int(sim["substeps"]))

    def compute_observations(self) -> None:
        state = torch.stack((self.sim.qpos[:, 0], self.sim.qvel[:, 0], self.sim.qpos[:, 1], self.sim.qvel[:, 1]), -1)
        torch.clamp(state, -self.clip_obs, self.clip_obs, out=self.obs_buf)

    def compute_reward(self) -> torch.Tensor:
        # From the unclipped state, as upstream: the clip at 5 would hide a cart beyond the rail's end.
        cart_pos, cart_vel = self.sim.qpos[:, 0], self.sim.qvel[:, 0]
        pole_angle, pole_vel = self.sim.qpos[:, 1], self.sim.qvel[:, 1]
        reward = 1.0 - pole_angle**2 - 0.01 * cart_vel.abs() - 0.005 * pole_vel.abs()
        failed = (cart_pos.abs() > self.reset_dist) | (pole_angle.abs() > math.pi / 2)
        self.rew_buf.copy_(torch.where(failed, -2.0, reward))
        return failed

    def reset_envs(self, mask: torch.Tensor) -> None:
        self.sim.reset(mask)
        n, dev = self.num_envs, self.device
        start_qpos = torch.empty(n, 2, device=dev).uniform_(-0.1, 0.1)
        start_qvel = torch.empty(n, 2, device=dev).uniform_(-0.25, 0.25)
        rows = mask[:, None]
        self.sim.qpos.copy_(torch.where(rows, start_qpos, self.sim.qpos))
        self.sim.qvel.copy_(torch.where(rows, start_qvel, self.sim.qvel))
        self.actions.masked_fill_(rows, 0.0)
        self.progress_buf.masked_fill_(mask, 0)
