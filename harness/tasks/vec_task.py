"""The env contract every task meets: IsaacGymEnvs' VecTask interface, on torch tensors on the device."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gymnasium
import mujoco
import numpy as np
import torch

from harness import graphs
from harness.sim.mjwarp import MjWarpSim


class VecTask:
    """`num_envs` environments stepped together: `reset()` -> obs dict; `step(a)` -> (obs dict, reward, done, extras).

    A task sets `self.sim` (an MjWarpSim, from `make_sim`) in its constructor and writes observations, rewards
    and resets.

    A step applies actions, runs the physics, computes observations, rewards and ends of episodes,
    then resets the ended environments at once, so the returned observation of an ended environment
    is the first one of its next episode. `extras['time_outs']` flags episodes cut by the time
    limit rather than failed, for rl_games' value bootstrap.
    """

    _joining_capture = False  # step() records into a caller's graph (recorded_into_capture)

    num_obs: int
    num_actions: int
    # env.* keys of the task config that the task reads; others are named in the ignored-settings warning.
    used_env_keys: frozenset[str] = frozenset()
    # Steps per episode where the config has no env.episodeLength (upstream hard-codes it for some tasks).
    default_episode_length: int | None = None
    # The buffers a step reads from the one before, besides the simulator's state: what a checkpoint keeps so
    # that a resume continues the same episodes. A task with more such buffers adds their names.
    episode_buffers: tuple[str, ...] = ("obs_buf", "rew_buf", "reset_buf", "timeout_buf", "progress_buf", "actions")
    # GPU memory that training takes per added env (physics, buffers, rollout storage), measured on an H100 with
    # bench/throughput.py: lets a num_envs that cannot fit be refused before anything is allocated. 0: unknown.
    gpu_bytes_per_env: int = 0
    # Contact pool and constraint rows per world, sized for the task's model (MjWarpSim).
    nconmax: int
    njmax: int

    def __init__(self, cfg: dict, sim_device: str, rl_device: str) -> None:
        self.cfg = cfg
        self.device = torch.device(sim_device)
        self.rl_device = torch.device(rl_device)
        self.num_envs = int(cfg["env"]["numEnvs"])
        self.max_episode_length = int(cfg["env"].get("episodeLength", self.default_episode_length))
        self.clip_actions = float(cfg["env"]["clipActions"])
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.num_obs,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.num_actions,), np.float32)
        n, dev = self.num_envs, self.device
        self.obs_buf = torch.zeros(n, self.num_obs, device=dev)
        self.rew_buf = torch.zeros(n, device=dev)
        self.reset_buf = torch.zeros(n, dtype=torch.bool, device=dev)
        self.timeout_buf = torch.zeros(n, dtype=torch.bool, device=dev)
        self.progress_buf = torch.zeros(n, dtype=torch.long, device=dev)
        self.actions = torch.zeros(n, self.num_actions, device=dev)
        self.nonfinite_resets = torch.zeros((), dtype=torch.long, device=dev)
        self.set_step_mode(graph=True)
        self._compiled_advance = None

    def make_sim(self, model: mujoco.MjModel, substeps: int) -> MjWarpSim:
        """One world of `model` per env on the sim device, `substeps` physics steps per control step."""
        return MjWarpSim(
            model,
            num_worlds=self.num_envs,
            device=str(self.device),
            nconmax=self.nconmax,
            njmax=self.njmax,
            substeps=substeps,
        )

    def set_step_mode(self, *, graph: bool, compiled: bool = False) -> None:
        """How step() runs from its next call: captured as a CUDA graph (on CUDA devices) or eagerly, and with
        the task's tensor math fused by torch.compile or not. Default: a graph, no compile; benchmarks compare."""
        self.use_step_graph, self.compile_task_math = graph, compiled
        self._step_graph: torch.cuda.CUDAGraph | None = None

    def get_state(self) -> dict:
        """Every world's episode as it stands (simulator state and episode buffers), copied to the CPU."""
        buffers = {name: getattr(self, name).detach().to("cpu", copy=True) for name in self.episode_buffers}
        return {"num_envs": self.num_envs, "buffers": buffers, "sim": self.sim.get_state()}

    def set_state(self, state: dict) -> bool:
        """Continue the episodes get_state() saved, in place; False (and nothing changed) if they do not fit."""
        if state.get("num_envs") != self.num_envs or set(state.get("buffers", ())) != set(self.episode_buffers):
            return False
        for name, value in state["buffers"].items():
            getattr(self, name).copy_(value)
        self.sim.set_state(state["sim"])
        return True

    def reset(self) -> dict[str, torch.Tensor]:
        """Start a new episode in every environment and return the first observations."""
        self.reset_envs(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self.compute_observations()
        return {"obs": self.obs_buf.to(self.rl_device)}

    def step(self, actions: torch.Tensor):
        """Advance every environment by one control step.

        On CUDA the whole step (physics, observations, rewards, resets) is captured as one CUDA graph
        at the second call and replayed from then on: no kernel launches from Python, no host sync.
        The returned tensors are the task's own buffers, overwritten by the next step.
        """
        if self._joining_capture:  # recorded into the caller's graph, as eager work
            with self.sim.outer_capture():
                self._advance_fn()(actions.to(self.device))
        elif self._step_graph is not None:
            self._action_input.copy_(actions)
            self._step_graph.replay()
        else:
            self._advance_fn()(actions.to(self.device))
            if self.use_step_graph and self.device.type == "cuda":
                self._step_graph = self._capture_step()
        return (
            {"obs": self.obs_buf.to(self.rl_device)},
            self.rew_buf.to(self.rl_device),
            self.reset_buf.to(self.rl_device),
            {"time_outs": self.timeout_buf.to(self.rl_device), "nonfinite_resets": self.nonfinite_resets},
        )

    @contextlib.contextmanager
    def recorded_into_capture(self) -> Iterator[None]:
        """Inside, step() records its work into the CUDA graph the caller is capturing on the sim's stream (the
        agent's rollout graph) instead of replaying its own graph; call it after a first step has loaded the kernels."""
        self._joining_capture = True
        try:
            yield
        finally:
            self._joining_capture = False

    def _advance(self, actions: torch.Tensor) -> None:
        """One control step, writing only into the task's buffers, so that it can be captured and replayed."""
        self.actions.copy_(actions.clamp(-self.clip_actions, self.clip_actions))
        self.apply_actions(self.actions)
        self.simulate()
        self.progress_buf += 1
        self.compute_observations()
        terminated = self.compute_reward()
        # A world whose physics went non-finite is ended and reset, with reward 0, and counted: no NaN or inf
        # reaches the policy, the normalizers or the returns.
        nonfinite = ~(torch.isfinite(self.obs_buf).all(-1) & torch.isfinite(self.rew_buf))
        self.rew_buf.masked_fill_(nonfinite, 0.0)
        self.nonfinite_resets.copy_(nonfinite.sum())
        terminated |= nonfinite
        torch.logical_and(self.progress_buf >= self.max_episode_length - 1, ~terminated, out=self.timeout_buf)
        torch.logical_or(terminated, self.timeout_buf, out=self.reset_buf)
        self.reset_envs(self.reset_buf)
        self.compute_observations()

    def _advance_fn(self):
        if not self.compile_task_math:
            return self._advance
        if self._compiled_advance is None:  # the physics calls stay outside the compiled graphs
            self._compiled_advance = torch.compile(self._advance, dynamic=False)
        return self._compiled_advance

    def _capture_step(self) -> torch.cuda.CUDAGraph:
        """Record `_advance` on the sim's stream; its first eager run has loaded every kernel."""
        graph = torch.cuda.CUDAGraph()
        self._action_input = self.actions.clone()
        with graphs.capture(graph, self.device), self.sim.outer_capture():
            self._advance_fn()(self._action_input)
        return graph

    def apply_actions(self, actions: torch.Tensor) -> None:
        """Turn clipped actions into the simulator's controls: by default one action per actuator, as is."""
        self.sim.ctrl.copy_(actions)

    def simulate(self) -> None:
        """Run the physics of one control step (the simulator's captured substeps)."""
        self.sim.step()

    def compute_observations(self) -> None:
        """Fill `obs_buf` from the simulator state."""
        raise NotImplementedError

    def compute_reward(self) -> torch.Tensor:
        """Fill `rew_buf`; return the mask of environments whose episode failed this step."""
        raise NotImplementedError

    def reset_envs(self, mask: torch.Tensor) -> None:
        """Put the environments where `mask` is True at the start of a new episode (no host sync)."""
        raise NotImplementedError
