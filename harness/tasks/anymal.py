"""Anymal: a quadruped follows random base-velocity commands on flat ground (IsaacGymEnvs' Anymal).

Upstream: isaacgymenvs/tasks/anymal.py with Anymal.yaml. Each episode draws one command (forward and sideways
speed, yaw rate) and keeps it; the reward is how closely the base's velocity in its own frame follows it, less a
small torque cost. Actions are joint position targets around the default pose, tracked by PD drives.
"""

from __future__ import annotations

from pathlib import Path

import torch
import warp as wp

from harness.sim.mjwarp import load_mjcf
from harness.tasks import anymal_kernels as kernels
from harness.tasks.vec_task import VecTask

ASSET = Path(__file__).parent / "assets" / "anymal.xml"
# Bodies whose contact with anything ends an episode (upstream: the base and the thighs, knee drives included).
FALL_BODIES = ("base", "LF_THIGH", "LH_THIGH", "RF_THIGH", "RH_THIGH")
# The exp kernel's width in both tracking terms (upstream's 0.25).
TRACKING_WIDTH = 0.25


class Anymal(VecTask):
    """48 observations, 12 actions (joint targets); IsaacGymEnvs' reward, terminations and resets."""

    num_obs = 48
    num_actions = 12
    used_env_keys = frozenset(
        {"numEnvs", "clipObservations", "clipActions", "baseInitState", "randomCommandVelocityRanges", "control"}
        | {"defaultJointAngles", "learn"}
    )
    episode_buffers = (*VecTask.episode_buffers, "commands")
    # Four feet on a plane use 4 contacts and 16 rows (pyramidal cones); room for a fallen robot's base and legs.
    nconmax, njmax = 24, 128
    gpu_bytes_per_env = 56 * 1024  # 1.14 GiB at 4096 envs, 1.80 GiB at 16384 (2026-11-26, H100)

    def __init__(self, cfg: dict, sim_device: str, rl_device: str) -> None:
        env, sim = cfg["env"], cfg["sim"]
        control, learn = env["control"], env["learn"]
        self.dt = float(sim["dt"]) * int(control["controlFrequencyInv"])
        self.default_episode_length = int(float(learn["episodeLength_s"]) / self.dt + 0.5)
        super().__init__(cfg, sim_device, rl_device)
        dev = self.device
        self.clip_obs = float(env["clipObservations"])
        self.action_scale = float(control["actionScale"])
        model = load_mjcf(ASSET, sim)
        stiffness, damping = float(control["stiffness"]), float(control["damping"])
        model.actuator_gainprm[:, 0] = stiffness  # torque = stiffness (target - q) - damping qdot
        model.actuator_biasprm[:, 1] = -stiffness
        model.actuator_biasprm[:, 2] = -damping
        self.sim = self.make_sim(model, substeps=int(sim["substeps"]) * int(control["controlFrequencyInv"]))
        joints = [model.joint(model.actuator_trnid[i, 0]).name for i in range(model.nu)]
        self.default_dof_pos = torch.tensor([float(env["defaultJointAngles"][j]) for j in joints], device=dev)
        init = env["baseInitState"]
        x, y, z, w = (float(v) for v in init["rot"])  # Isaac Gym's quaternion order is x, y, z, w
        root = [*map(float, init["pos"]), w, x, y, z, *map(float, init["vLinear"]), *map(float, init["vAngular"])]
        self.start_root = torch.tensor(root, device=dev)
        ranges = env["randomCommandVelocityRanges"]
        bounds = torch.tensor([ranges["linear_x"], ranges["linear_y"], ranges["yaw"]], dtype=torch.float32)
        self.command_low, self.command_span = bounds[:, 0].to(dev), (bounds[:, 1] - bounds[:, 0]).to(dev)
        self.lin_vel_scale = float(learn["linearVelocityScale"])
        self.ang_vel_scale = float(learn["angularVelocityScale"])
        self.dof_pos_scale = float(learn["dofPositionScale"])
        self.dof_vel_scale = float(learn["dofVelocityScale"])
        # Upstream multiplies every reward scale by dt.
        self.reward_scales = {
            key: float(learn[f"{key}RewardScale"]) * self.dt
            for key in ("linearVelocityXY", "angularVelocityZ", "torque")
        }
        fall_bodies = [model.body(name).id for name in FALL_BODIES]
        self.ends_episode = torch.tensor([int(b) in fall_bodies for b in model.geom_bodyid], device=dev)
        self.commands = torch.zeros(self.num_envs, 3, device=dev)
        self.touched = torch.zeros(self.num_envs, device=dev)
        contact = self.sim.data.contact  # the contact pool of all worlds: its first `nacon` entries are in use
        self.contact_geoms, self.contact_world = wp.to_torch(contact.geom), wp.to_torch(contact.worldid)
        self.contact_dist, self.contact_count = wp.to_torch(contact.dist), wp.to_torch(self.sim.data.nacon)
        self.contact_slots = torch.arange(self.contact_dist.shape[0], device=dev)
        # The kernels' views of the buffers they read and write, made once (each is updated in place).
        self._wp = {name: wp.from_torch(getattr(self, name)) for name in ("obs_buf", "rew_buf", "actions", "commands")}
        self._wp["default_dof_pos"] = wp.from_torch(self.default_dof_pos)

    def apply_actions(self, actions: torch.Tensor) -> None:
        torch.add(self.default_dof_pos, actions, alpha=self.action_scale, out=self.sim.ctrl)

    def compute_observations(self) -> None:
        """Base velocities, upstream's "projected gravity" (its quirk, kept: the world's down vector rotated by the
        base's orientation, not gravity in the base's frame; the two agree only while the base is level), the
        command, joint offsets and velocities, actions: harness/tasks/anymal_kernels.py."""
        data = self.sim.data
        self.sim.launch(
            kernels.observe,
            self.num_envs,
            [data.qpos, data.qvel, self._wp["commands"], self._wp["default_dof_pos"], self._wp["actions"]]
            + [self.lin_vel_scale, self.ang_vel_scale, self.dof_pos_scale, self.dof_vel_scale, self.clip_obs]
            + [self._wp["obs_buf"]],
        )

    def compute_reward(self) -> torch.Tensor:
        data, s = self.sim.data, self.reward_scales
        self.sim.launch(
            kernels.reward,
            self.num_envs,
            [data.qpos, data.qvel, data.qfrc_actuator, self._wp["commands"], s["linearVelocityXY"]]
            + [s["angularVelocityZ"], s["torque"], TRACKING_WIDTH, self._wp["rew_buf"]],
        )
        return self.fallen()

    def fallen(self) -> torch.Tensor:
        """Worlds where the base or a thigh touches anything (upstream: a contact force above 1 N there). From the
        contacts of the last substep, counted per world without reading the contact count to the host."""
        in_use = self.contact_slots < self.contact_count
        touching = in_use & (self.contact_dist < 0) & self.ends_episode[self.contact_geoms.clamp(min=0)].any(-1)
        self.touched.zero_().index_add_(0, self.contact_world.clamp(min=0), touching.float())
        return self.touched > 0

    def reset_envs(self, mask: torch.Tensor) -> None:
        self.sim.reset(mask)
        n, dev = self.num_envs, self.device
        dof_pos = self.default_dof_pos * torch.empty(n, self.num_actions, device=dev).uniform_(0.5, 1.5)
        dof_vel = torch.empty(n, self.num_actions, device=dev).uniform_(-0.1, 0.1)
        root = self.start_root.expand(n, 13)
        start_qpos = torch.cat((root[:, :7], dof_pos), dim=-1)
        start_qvel = torch.cat((root[:, 7:], dof_vel), dim=-1)
        rows = mask[:, None]
        self.sim.qpos.copy_(torch.where(rows, start_qpos, self.sim.qpos))
        self.sim.qvel.copy_(torch.where(rows, start_qvel, self.sim.qvel))
        commands = self.command_low + self.command_span * torch.rand(n, 3, device=dev)
        self.commands.copy_(torch.where(rows, commands, self.commands))
        self.actions.masked_fill_(rows, 0.0)
        self.progress_buf.masked_fill_(mask, 0)
