"""MuJoCo Warp: many worlds of one MJCF, stepped on the GPU (or Warp's CPU backend), seen as torch tensors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import mujoco
import mujoco_warp as mjw
import torch
import warp as wp

from harness import graphs
from harness.errors import UserError

# No banner and no line per loaded kernel module; warnings and errors still print.
wp.config.quiet = True
wp.config.log_level = wp.LOG_WARNING

# Sim keys this engine reads; every other key in a task's `sim` block is named in one warning.
USED_SIM_KEYS = {"dt", "substeps", "up_axis", "gravity"}


# What a step reads of the steps before it (MuJoCo's state and the constraint solver's warm start): enough to
# continue every world exactly; everything else a step computes afresh.
STATE_FIELDS = ("time", "qpos", "qvel", "act", "qacc_warmstart")


def load_mjcf(path: Path, sim_cfg: dict) -> mujoco.MjModel:
    """Load an MJCF file with the task's `sim` settings: timestep = dt / substeps, gravity; z is up."""
    if str(sim_cfg.get("up_axis", "z")).lower() != "z":
        raise UserError(f"sim.up_axis={sim_cfg['up_axis']}: MuJoCo Warp tasks are z-up; set sim.up_axis=z")
    model = mujoco.MjModel.from_xml_path(str(path))
    model.opt.timestep = float(sim_cfg["dt"]) / int(sim_cfg["substeps"])
    if "gravity" in sim_cfg:
        model.opt.gravity[:] = [float(g) for g in sim_cfg["gravity"]]
    return model


class MjWarpSim:
    """`num_worlds` copies of one MuJoCo model, with zero-copy torch views of the state arrays.

    The physics substeps and the masked reset are each captured once as a graph and replayed (a CUDA
    graph on the GPU; on the CPU, Warp replays the recorded launches, identical to eager and far
    faster). On CUDA, torch and Warp share one stream so their work stays ordered without host syncs.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        *,
        num_worlds: int,
        device: str,
        substeps: int,
        nconmax: int,
        njmax: int,
        capture: bool = True,
    ) -> None:
        self.device = torch.device(device)
        self.num_worlds = num_worlds
        self.substeps = substeps
        self.mj_model = model
        self._wp_device = wp.get_device(str(self.device))
        self._stream = self._shared_stream()
        with wp.ScopedDevice(self._wp_device), self._scoped_stream(sync=True):
            self.model = mjw.put_model(model)
            self.data = mjw.make_data(model, nworld=num_worlds, nconmax=nconmax, njmax=njmax)
            # Foot force sensors read the body wrenches computed after the constraint solve.
            self.model.opt.run_rne_postconstraint = True
            # Models cap solver and line-search iterations on purpose (warm starts carry over between
            # steps); reaching a cap is expected, not worth a line per step.
            self.model.opt.warn_overflow &= ~(mjw.OverflowType.ITERATIONS | mjw.OverflowType.LS_ITERATIONS)
            self._reset_mask = wp.zeros(num_worlds, dtype=bool)
        self.qpos = wp.to_torch(self.data.qpos)
        self.qvel = wp.to_torch(self.data.qvel)
        self.ctrl = wp.to_torch(self.data.ctrl)
        self.qfrc_actuator = wp.to_torch(self.data.qfrc_actuator)
        self.sensordata = wp.to_torch(self.data.sensordata)
        self.reset_mask = wp.to_torch(self._reset_mask)
        self._step_graph = self._reset_graph = None
        self._in_outer_capture = False
        if capture:
            self._step_graph = self._record(self._step_eager)
            self._reset_graph = self._record(self._reset_eager)
        # Recording ran the step once; start every world from the model's initial state.
        with wp.ScopedDevice(self._wp_device), self._scoped_stream():
            mjw.reset_data(self.model, self.data)

    def get_state(self) -> dict[str, torch.Tensor]:
        """Every world's state (STATE_FIELDS), copied to the CPU (a copy there too, not a view of the live arrays)."""
        return {name: wp.to_torch(getattr(self.data, name)).to("cpu", copy=True) for name in STATE_FIELDS}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        """Put back what get_state() returned, in place (captured graphs keep reading the same arrays)."""
        for name in STATE_FIELDS:
            wp.to_torch(getattr(self.data, name)).copy_(state[name])

    # Warp launches stay outside the graphs torch.compile makes of a step (VecTask.set_step_mode(compiled=True)).
    @torch.compiler.disable
    def step(self) -> None:
        """Advance every world by `substeps` physics steps, with the controls now in `ctrl`."""
        self._run(self._step_graph, self._step_eager)

    @torch.compiler.disable
    def reset(self, mask: torch.Tensor) -> None:
        """Return the worlds where `mask` is True to the model's initial state; others are untouched.

        Afterwards write the episode's start state into `qpos`/`qvel` in place. Derived arrays
        (positions of bodies, contacts, sensors) of those worlds are stale until the next step.
        """
        self.reset_mask.copy_(mask)
        self._run(self._reset_graph, self._reset_eager)

    @torch.compiler.disable
    def launch(self, kernel, dim: int, inputs: list) -> None:
        """Run a task's Warp kernel over `dim` threads after the physics, on the sim's device and stream (inside an
        outer capture too: Warp records it there)."""
        with wp.ScopedDevice(self._wp_device), self._scoped_stream():
            wp.launch(kernel, dim, inputs)

    def _step_eager(self) -> None:
        for _ in range(self.substeps):
            mjw.step(self.model, self.data)

    def _reset_eager(self) -> None:
        # A masked reset that includes world 0 zeroes the shared contact count (MuJoCo issue 3572),
        # hiding other worlds' contacts until the next collision pass. Nothing reads contacts between
        # this reset and the next step, whose collision pass recounts them, so no world is affected.
        mjw.reset_data(self.model, self.data, reset=self._reset_mask)

    @contextmanager
    def outer_capture(self) -> Iterator[None]:
        """Let a CUDA graph that the caller is capturing on this sim's stream record the physics launches.

        For `torch.cuda.graph(graph, stream=torch.cuda.current_stream())` around a whole env step: Warp
        is told the capture is external, and steps and resets launch their kernels into it.
        """
        with graphs.warp_joins_capture(self._stream):
            self._in_outer_capture = True
            try:
                yield
            finally:
                self._in_outer_capture = False

    def _run(self, graph, eager) -> None:
        with wp.ScopedDevice(self._wp_device), self._scoped_stream():
            if graph is None or self._in_outer_capture:
                eager()
            else:
                wp.capture_launch(graph)

    def _record(self, fn):
        """Run `fn` once eagerly (loads its kernels), then capture it as a graph to replay."""
        with wp.ScopedDevice(self._wp_device), self._scoped_stream():
            fn()
            with graphs.collection_paused(), wp.ScopedCapture() as capture:
                fn()
        return capture.graph

    def _shared_stream(self):
        if self.device.type != "cuda":
            return None
        # One stream for torch and Warp keeps their work ordered without syncs. It must not be the
        # legacy default stream, on which CUDA cannot capture graphs.
        stream = torch.cuda.current_stream(self.device)
        if stream == torch.cuda.default_stream(self.device):
            stream = torch.cuda.Stream(self.device)
            torch.cuda.set_stream(stream)
        return graphs.warp_stream(stream)

    def _scoped_stream(self, sync: bool = False):
        # The shared stream orders everything after construction: waiting on Warp's own stream at every call
        # would cost an event per call, and during an outer capture it would pull in uncaptured work.
        return wp.ScopedStream(self._stream, sync_enter=sync) if self._stream is not None else nullcontext()
