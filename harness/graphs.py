"""CUDA graph capture as this project does it: on the stream torch and Warp share, safe from stray frees."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch


@contextmanager
def capture(graph: torch.cuda.CUDAGraph, device: torch.device | str | None = None) -> Iterator[None]:
    """Record the CUDA work launched inside into `graph`, on the current stream of `device`.

    That stream is the one the simulator shares with torch (MjWarpSim), so captured work stays ordered
    with the physics without syncs. Thread-local mode, as Warp's own captures use. Unlike
    `torch.cuda.graph`, no device sync and no emptying of torch's memory cache first: both would cost
    the first epoch time, and neither is needed for a private memory pool. Garbage collection is off
    meanwhile (`collection_paused`).
    """
    with collection_paused(), torch.cuda.stream(torch.cuda.current_stream(device)):
        graph.capture_begin(capture_error_mode="thread_local")
        try:
            yield
        finally:
            graph.capture_end()


@contextmanager
def collection_paused() -> Iterator[None]:
    """No garbage collection inside: wrap every CUDA graph capture (torch's and Warp's own) in it.

    A collection there frees whatever garbage it finds while the stream is capturing: a Warp array's free would be
    recorded into the graph and invalidate it, and a pinned host tensor's free makes torch record the event that
    guards its reuse on the capturing stream, so the event never really happens; the next pinned allocation of that
    size queries it and fails with "CUDA error: invalid argument" (seen on fresh machines, where compiling kernels
    made the collections fall inside the physics' captures)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_WARP_STREAMS: dict = {}  # Warp's handle on each torch stream it has run on, for the whole process


def warp_stream(stream: torch.cuda.Stream):
    """Warp's handle on a torch stream, one per stream for the whole process: a handle that is garbage-collected
    unregisters its stream from Warp, which would leave every other user of that stream (a sim, the IPC all-reduce)
    with an "unknown stream"."""
    import warp as wp  # here: the agent's graphs need no Warp

    if stream.cuda_stream not in _WARP_STREAMS:
        _WARP_STREAMS[stream.cuda_stream] = wp.stream_from_torch(stream)
    return _WARP_STREAMS[stream.cuda_stream]


@contextmanager
def warp_joins_capture(stream) -> Iterator[None]:
    """Let a CUDA graph that torch is capturing on `stream` (Warp's handle on it) record the Warp launches made
    inside: Warp is told the capture is external."""
    import warp as wp

    wp.capture_begin(stream=stream, external=True)
    try:
        yield
    finally:
        wp.capture_end(stream=stream)


@contextmanager
def warp_on_torch_stream(device: torch.device) -> Iterator:
    """Warp's handle on torch's current stream of `device`, for Warp launches that must run in torch's order; inside
    torch's graph capture on that stream, Warp joins the capture (as the physics does, MjWarpSim.outer_capture)."""
    stream = warp_stream(torch.cuda.current_stream(device))
    with warp_joins_capture(stream) if torch.cuda.is_current_stream_capturing() else nullcontext():
        yield stream


def warp_launch(kernel, dim, inputs: list) -> None:
    """Launch a Warp kernel on its tensors' device and, on CUDA, on torch's current stream (recorded into a CUDA graph
    that torch is capturing there): Warp kernels of the agent's own (harness.rl) run in torch's order."""
    import warp as wp  # here: the agent's graphs need no Warp

    wp.init()  # (a no-op once MuJoCo Warp has initialised it, as in training)
    device = next(t.device for t in inputs if torch.is_tensor(t))
    args = [wp.from_torch(t) if torch.is_tensor(t) else t for t in inputs]
    if device.type != "cuda":
        wp.launch(kernel, dim, args, device="cpu")
        return
    with warp_on_torch_stream(device) as stream:
        wp.launch(kernel, dim, args, device=f"cuda:{device.index}", stream=stream)


def keep_buffers_in_place(model: torch.nn.Module) -> None:
    """Keep one tensor per buffer of `model` for the whole run: the one seen at the first call.

    rl_games' normalizers assign new tensors to their statistics when they update (eagerly: the value
    normalizer once an epoch, the input normalizer in every eager minibatch step). A CUDA graph reads and
    writes the tensors it captured, and the rollout's and the update's graphs must share the statistics:
    call this before capturing, inside a capture after the captured work (it records the copies), and
    before replaying. It copies the values of any replacement into the kept tensor and puts that back.
    """
    if model not in _KEPT_BUFFERS:
        _KEPT_BUFFERS[model] = list(model.named_buffers())
    for name, kept in _KEPT_BUFFERS[model]:
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        current = getattr(module, attr)
        if current is not kept:
            kept.copy_(current)
            setattr(module, attr, kept)


_KEPT_BUFFERS: weakref.WeakKeyDictionary[torch.nn.Module, list[tuple[str, torch.Tensor]]] = weakref.WeakKeyDictionary()
