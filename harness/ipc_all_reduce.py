"""All-reduce between the GPUs of one machine through ordinary device memory shared by CUDA IPC, without NCCL.

Why: making an NCCL communicator slows a process's training by about 6% for the rest of its life, even a
communicator of one rank with nothing exchanged, and why is not known
(bench/results/2026-11-26-multi-gpu-what-costs-H100x2.md). The ranks' collectives are small (one flat gradient
buffer per minibatch, a KL divergence, the normalizers' moments), which a one-shot exchange through each other's
memory suits. Measured against the alternatives on 2 H100 (bench/results/2026-11-26-ipc-all-reduce-H100x2.md): 1.84x
in training against 1.81x with PyTorch's symmetric memory (a private torch API, which this replaced) and 1.77x
with NCCL; two ranks with only the gloo group and nothing exchanged make 2.0x.

How: every rank owns a float32 buffer and a row of flags, both from CUDA's plain allocator (Warp's default
allocator, not a memory pool: IPC needs that), and maps every other rank's through IPC handles passed over the gloo
group. To average a tensor, each rank copies it into its own buffer, meets the others at a barrier, sums all the
buffers in rank order into the tensor (torch kernels reading the peers' memory directly, the same order on every
rank so that the results are bitwise equal), divides, and meets them at a second barrier, so that no rank overwrites
its buffer while another still reads it. A barrier: a counter on the device goes up by one; the rank writes it into
its slot of every other rank's flags and waits, one GPU thread reading its own row atomically, until every other
rank's slot there has reached it. For two ranks an average is seven small kernels. All of it is kernels on torch's
current stream with no host involvement, so it sits inside the update's CUDA graph.

Two ranks that map each other's memory, even with nothing exchanged, train 5-10% slower than two that do not
(bench/results/2026-11-26-what-in-the-IPC-set-up-costs-H100x2.md). The same exchange over pinned host memory, which no
GPU maps from another process, was no faster (1.86x against 1.93x on 2 H100,
bench/results/2026-11-26-host-all-reduce-and-split-batch-H100x2.md) and was removed.
"""

from __future__ import annotations

import os
import time

import torch
import torch.distributed as dist
import warp as wp

from harness import graphs

FLOATS = (torch.float32, torch.float64)
MIN_CAPACITY = 1 << 20  # floats (4 MiB): more than the gradients of IsaacGymEnvs' networks
HANDLE_BYTES = 64  # a CUDA IPC memory handle


@wp.kernel
def _arrive(counter: wp.array(dtype=wp.int32), flags: wp.array(dtype=wp.int32), slot: int, bump: int):
    # One thread: the barrier's number (the counter, raised by the first of these launches of a barrier) stored in
    # this rank's slot of a peer's flags. A plain store: each slot has one writer, and a peer's memory takes stores
    # over PCIe too, where it takes no atomics.
    number = counter[0] + bump
    counter[0] = number
    flags[slot] = number


@wp.kernel
def _wait(flags: wp.array(dtype=wp.int32), counter: wp.array(dtype=wp.int32), own_slot: int):
    # One thread. The atomic reads go to memory each time: a plain read could be served from a cache forever.
    number = counter[0]
    for slot in range(flags.shape[0]):
        if slot != own_slot:
            while wp.atomic_add(flags, slot, 0) < number:
                pass


class Exchange:
    """The averaging itself, given every rank's buffer and flags as this process sees them (its own and the peers'
    mapped ones): what the GPUs run, apart from how the memory came to be shared."""

    def __init__(self, rank: int, buffers: list, flags: list, device: torch.device) -> None:
        self.rank, self.world_size, self.device = rank, len(buffers), torch.device(device)
        self._wp_device = wp.device_from_torch(self.device)
        self._buffers = [wp.to_torch(buffer) for buffer in buffers]
        self._flags = flags
        self._peers = [r for r in range(self.world_size) if r != rank]
        self._counter_view = torch.zeros(1, dtype=torch.int32, device=self.device)  # on torch's stream, as its uses
        self._counter = wp.from_torch(self._counter_view)

    @property
    def capacity(self) -> int:
        return self._buffers[self.rank].numel()

    def average_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Replace `tensor` by its mean over the ranks, in place, on torch's current stream (float64 tensors, rl_games'
        normalizer moments once an epoch, are averaged in float32)."""
        if tensor.device != self.device or tensor.dtype not in FLOATS or not tensor.is_contiguous():
            raise ValueError(f"the IPC all-reduce needs a contiguous float tensor on {self.device}, got {tensor}")
        flat = tensor.view(-1)
        work = flat if flat.dtype == torch.float32 else flat.to(torch.float32)
        if work.numel() > self.capacity:
            raise ValueError(f"the IPC all-reduce's buffers hold {self.capacity} floats, not {work.numel()}")
        count = work.numel()
        self._buffers[self.rank][:count].copy_(work)
        self._barrier()
        if self.world_size == 1:
            work.copy_(self._buffers[0][:count])
        else:
            torch.add(self._buffers[0][:count], self._buffers[1][:count], out=work)
        for buffer in self._buffers[2:]:
            work.add_(buffer[:count])
        work.div_(self.world_size)
        self._barrier()
        if work is not flat:
            flat.copy_(work)
        return tensor

    def _barrier(self) -> None:
        if self.device.type == "cuda":
            with graphs.warp_on_torch_stream(self.device) as stream:
                self._arrive_everywhere(stream)
                wp.launch(
                    _wait, 1, [self._flags[self.rank], self._counter, self.rank], device=self._wp_device, stream=stream
                )
            return
        self._arrive_everywhere(None)
        # On the CPU (the tests' ranks are threads sharing arrays) Warp's atomics are plain loads and stores, and a
        # compiled loop of those may read once and never again: poll from Python instead.
        own = wp.to_torch(self._flags[self.rank])
        while bool((own[self._peers] < self._counter_view).any()):
            time.sleep(0)

    def _arrive_everywhere(self, stream) -> None:
        for i, peer in enumerate(self._peers):
            inputs = [self._counter, self._flags[peer], self.rank, int(i == 0)]
            wp.launch(_arrive, 1, inputs, device=self._wp_device, stream=stream)


class IpcAllReduce:
    """Averages float tensors over the ranks of `group`, all on GPUs of this machine, in place: an `Exchange` over
    buffers shared through CUDA IPC. Making it, growing it and closing it are collectives."""

    def __init__(self, group: dist.ProcessGroup, device: torch.device) -> None:
        self.group, self.device = group, torch.device(device)
        wp.init()  # the ranks start this before the env, which would otherwise be the first to use Warp
        self._wp_device = wp.device_from_torch(self.device)
        self._own, self._exchange = None, None
        self._reserve(MIN_CAPACITY)

    def average_(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.numel() > self._exchange.capacity:
            self._reserve(tensor.numel())
        return self._exchange.average_(tensor)

    def close(self) -> None:
        """Unmap the peers' memory once no rank can still be reading it, then free this rank's once every rank has
        unmapped it."""
        torch.cuda.synchronize(self.device)
        dist.barrier(self.group)
        self._exchange = None  # holds the only references to the peers' mapped arrays
        dist.barrier(self.group)
        self._own = None

    def _reserve(self, capacity: int) -> None:
        """Allocate this rank's memory and map every other rank's. A rank whose own part fails still joins each of
        the set-up's collectives, so that all ranks raise together and none waits in one the others left."""
        if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(f"the IPC all-reduce's buffers hold under {capacity} floats and cannot grow in a graph")
        if self._exchange is not None:
            self.close()
        capacity, world_size = max(capacity, MIN_CAPACITY), self.group.size()
        try:
            self._own = self._allocate(capacity, world_size)
            handle, own_error = b"\x01" + b"".join(array.ipc_handle() for array in self._own), ""
        except RuntimeError as error:
            # Its message, not the exception: one kept in this frame, whose traceback holds the frame, would keep
            # this object and its process group alive until the interpreter's exit, which then aborts.
            self._own, handle, own_error = None, bytes(1 + 2 * HANDLE_BYTES), str(error)
        handles = self._all_gather(handle)
        failed = [r for r, h in enumerate(handles) if not h[0]]
        if own_error:
            raise RuntimeError(own_error)
        if failed:
            raise RuntimeError(f"rank(s) {failed} could not share their GPU memory through CUDA IPC")
        try:
            buffers = self._open_everyones(handles, 0, wp.float32, capacity)
            flag_rows = self._open_everyones(handles, 1, wp.int32, world_size)
            mapped = self._signatures_read(buffers, flag_rows)
        except RuntimeError:  # an open that raises rather than handing back fresh memory
            mapped = False
        self._agree_mapped(mapped)
        self._exchange = Exchange(self.group.rank(), buffers, flag_rows, self.device)
        # Loads the kernels now rather than inside a graph capture, and checks that every rank is reachable.
        self._exchange.average_(torch.zeros(1, device=self.device))

    def _allocate(self, capacity: int, world_size: int) -> tuple:
        """This rank's buffer and flags, signed for the peers to read through their mappings: the buffer's first
        float (the first average overwrites it) and this rank's own slot of its flags (no barrier uses it)."""
        rank = self.group.rank()
        with wp.ScopedMempool(self._wp_device, False):  # IPC needs CUDA's plain allocator
            buffer = wp.zeros(capacity, dtype=wp.float32, device=self._wp_device)
            flags = wp.zeros(world_size, dtype=wp.int32, device=self._wp_device)
        buffer[:1].fill_(rank + 1)  # on Warp's stream, after the zeros
        flags[rank : rank + 1].fill_(rank + 1)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the whole device: written before any peer can look
        return buffer, flags

    def _all_gather(self, handle: bytes) -> list:
        own = torch.frombuffer(bytearray(handle), dtype=torch.uint8)
        handles = [torch.empty_like(own) for _ in range(self.group.size())]
        dist.all_gather(handles, own, group=self.group)
        return [h.numpy().tobytes() for h in handles]

    def _open_everyones(self, handles: list, index: int, dtype, length: int) -> list:
        """Every rank's array `index` (0: buffer, 1: flags) as this process sees it: its own, and the others' opened
        from their IPC handles."""
        rank, start = self.group.rank(), 1 + index * HANDLE_BYTES
        return [
            self._own[index]
            if r == rank
            else wp.from_ipc_handle(h[start : start + HANDLE_BYTES], dtype, (length,), device=self._wp_device)
            for r, h in enumerate(handles)
        ]

    @staticmethod
    def _signatures_read(buffers: list, flag_rows: list) -> bool:
        """Whether every rank's signature reads right through this process's mappings. Where CUDA IPC cannot open a
        peer's memory, Warp hands back a fresh array of this process's own rather than an error; without this check
        the first barrier would then spin forever."""
        signatures = torch.stack([wp.to_torch(b)[0] for b in buffers]).cpu()
        slots = torch.stack([wp.to_torch(f)[r].float() for r, f in enumerate(flag_rows)]).cpu()
        expected = torch.arange(1, len(buffers) + 1, dtype=torch.float32)
        return torch.equal(signatures, expected) and torch.equal(slots, expected)

    def _agree_mapped(self, mapped: bool) -> None:
        """Agree with the other ranks before any rank waits on a peer's flags."""
        everyone = torch.tensor([mapped], dtype=torch.int32)
        dist.all_reduce(everyone, op=dist.ReduceOp.MIN, group=self.group)
        if not everyone.item():
            raise RuntimeError("CUDA IPC could not map every rank's GPU memory into every other rank")


def usable(world_size: int) -> bool:
    """Whether the ranks can use `IpcAllReduce`: all of them on this machine, on GPUs that can map each other's
    memory (NVLink or PCIe peer access)."""
    if int(os.environ.get("LOCAL_WORLD_SIZE", "0")) != world_size:  # torchrun started some on other machines
        return False
    count = torch.cuda.device_count()
    return all(torch.cuda.can_device_access_peer(a, b) for a in range(count) for b in range(count) if a != b)
