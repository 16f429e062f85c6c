"""All-reduce between the GPUs of one machine through each other's memory (CUDA IPC), without NCCL.

Why: a rank that has made an NCCL communicator trains 0-6% slower for the rest of its life, even with the
communicator destroyed (bench/results/2026-11-26-scaling-4-GPUs-H200x4.md). Measured since: making this symmetric
memory costs as much (bench/results/2026-11-26-multi-gpu-what-costs-H100x2.md), so its gain over NCCL is one kernel
per all-reduce and no NCCL in the process; harness.ipc_all_reduce is the candidate to replace it. The ranks'
collectives here are small (one flat gradient buffer per minibatch, a KL divergence, the normalizers' moments),
which is what a one-shot all-reduce suits: every rank copies its tensor into a buffer that all ranks have mapped,
waits for the others at a barrier of flags in that memory, and sums all ranks' buffers itself. That is PyTorch's
symmetric memory (its CUDA backend and its `one_shot_all_reduce_copy_out` kernel): one kernel on torch's current
stream, with no host involvement, so it sits inside the update's CUDA graph as NCCL's call did. Its handles are
exchanged through the gloo group's store. NVLink multicast is not used (one-shot reads each peer's buffer directly),
and it is switched off before the first allocation so that none is made.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

FLOATS = (torch.float32, torch.float64)
MIN_CAPACITY = 1 << 20  # floats (4 MiB): more than the gradients of IsaacGymEnvs' networks


class PeerAllReduce:
    """Averages float tensors over the ranks of `group`, all on GPUs of this machine, in place (float64 ones in
    float32: see average_)."""

    def __init__(self, group: dist.ProcessGroup, device: torch.device) -> None:
        os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
        import torch.distributed._symmetric_memory as symmetric_memory

        self._symmetric_memory = symmetric_memory
        self.group, self.device = group, torch.device(device)
        self.world_size = group.size()
        self._buffer = None
        self._reserve(MIN_CAPACITY)

    def average_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Replace `tensor` by its mean over the ranks, in place, on torch's current stream. The kernel sums
        float32 (and bfloat16) only: float64 tensors (rl_games' normalizer moments, once an epoch) are averaged in
        float32, whose seven digits are far finer than those statistics need."""
        if tensor.device != self.device or tensor.dtype not in FLOATS or not tensor.is_contiguous():
            raise ValueError(f"the peer all-reduce needs a contiguous float tensor on {self.device}, got {tensor}")
        flat = tensor.view(-1)
        # The kernel moves 16-byte vectors where the offset allows, and needs the same width for the tensor as
        # for the buffer, which starts at offset 0.
        aligned = flat.dtype == torch.float32 and flat.storage_offset() % 4 == 0
        work = flat if aligned else flat.to(torch.float32, copy=True)
        if work.numel() > self._buffer.numel():
            self._reserve(work.numel())
        slot = self._buffer[: work.numel()]
        torch.ops.symm_mem.one_shot_all_reduce_copy_out(slot, work, "sum", self.group.group_name, work)
        work.div_(self.world_size)
        if work is not flat:
            flat.copy_(work)
        return tensor

    def close(self) -> None:
        """Free the buffer once no rank can still be reading it."""
        torch.cuda.synchronize(self.device)
        dist.barrier(self.group)
        self._buffer = None

    def _reserve(self, numel: int) -> None:
        """Allocate (or grow) the buffer every rank maps: a collective, so every rank reaches it together, as
        they do for an all-reduce of the same size; never while a CUDA graph is being captured."""
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError(f"the peer all-reduce buffer holds under {numel} floats and cannot grow in a graph")
        if self._buffer is not None:  # no rank may still read the old one
            self.close()
        capacity = max(numel, MIN_CAPACITY)
        self._buffer = self._symmetric_memory.empty(capacity, dtype=torch.float32, device=self.device)
        self._symmetric_memory.rendezvous(self._buffer, self.group)


def usable(world_size: int) -> bool:
    """Whether the ranks can use `PeerAllReduce`: all of them on this machine, on GPUs that can map each other's
    memory (NVLink or PCIe peer access). (Also what harness.ipc_all_reduce needs.)"""
    if int(os.environ.get("LOCAL_WORLD_SIZE", "0")) != world_size:
        return False
    count = torch.cuda.device_count()
    return all(torch.cuda.can_device_access_peer(a, b) for a in range(count) for b in range(count) if a != b)
