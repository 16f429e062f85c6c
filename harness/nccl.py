"""A communicator of NCCL itself, called through ctypes, for the ranks' averages on their GPUs when the ranks span
several machines (on one machine harness.ipc_all_reduce averages without NCCL).

Why not torch.distributed's NCCL backend: creating its process group (ProcessGroupNCCL) slows the process's
training for the rest of its life, even if the group is destroyed at once: 11% on the machine where NCCL's own
communicator, driven from here, cost 6-7% (bench/results/2026-11-26-multi-gpu-nccl.md; the communicator's own
cost is NCCL's, measured with no group at all). torch.distributed stays the ranks' rendezvous and their host-side
group (gloo), which hands NCCL's unique id from rank 0 to the others. The calls are enqueued on torch's current
stream, so they can sit inside CUDA graphs as torch's would. The library is the one torch itself loaded (its
nvidia-nccl wheel).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os

import torch

# From nccl.h (stable since NCCL 2.10): ncclDataType_t, ncclRedOp_t and ncclUniqueId's size.
DATA_TYPES = {
    torch.int8: 0,
    torch.uint8: 1,
    torch.int32: 2,
    torch.int64: 4,
    torch.float16: 6,
    torch.float32: 7,
    torch.float64: 8,
    torch.bfloat16: 9,
}
AVG = 4  # ncclRedOp_t
UNIQUE_ID_BYTES = 128


class UniqueId(ctypes.Structure):
    _fields_ = [("internal", ctypes.c_byte * UNIQUE_ID_BYTES)]


def _load_library() -> ctypes.CDLL:
    """libnccl.so.2 as torch loaded it (found by its soname among the loaded libraries), else from the
    nvidia-nccl wheel's folder."""
    try:
        return ctypes.CDLL("libnccl.so.2")
    except OSError:
        pass
    import nvidia.nccl  # the wheel torch's CUDA builds depend on

    for folder in nvidia.nccl.__path__:
        for path in glob.glob(os.path.join(folder, "lib", "libnccl.so*")):
            return ctypes.CDLL(path)
    raise OSError("libnccl.so.2 not found")


@functools.lru_cache(maxsize=None)  # noqa: UP033 (functools.cache is 3.9+; Isaac Gym runs 3.8)
def library() -> ctypes.CDLL:
    lib = _load_library()
    lib.ncclGetErrorString.restype = ctypes.c_char_p
    lib.ncclCommInitRank.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, UniqueId, ctypes.c_int]
    collective = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    lib.ncclAllReduce.argtypes = [*collective, ctypes.c_void_p, ctypes.c_void_p]
    lib.ncclCommDestroy.argtypes = [ctypes.c_void_p]
    return lib


def _check(result: int) -> None:
    if result != 0:
        raise RuntimeError(f"NCCL error {result}: {library().ncclGetErrorString(result).decode()}")


def version() -> str:
    code = ctypes.c_int()
    _check(library().ncclGetVersion(ctypes.byref(code)))
    major, rest = divmod(code.value, 10000)
    return f"{major}.{rest // 100}.{rest % 100}"


def unique_id() -> bytes:
    """A new communicator's id: rank 0 makes it and every rank passes it to `Communicator`."""
    uid = UniqueId()
    _check(library().ncclGetUniqueId(ctypes.byref(uid)))
    return bytes(bytearray(uid.internal))


class Communicator:
    """This rank's member of one NCCL communicator over `world_size` ranks, one GPU each."""

    def __init__(self, uid: bytes, rank: int, world_size: int, device: torch.device) -> None:
        self.device = torch.device(device)
        handle = UniqueId()
        ctypes.memmove(handle.internal, uid, UNIQUE_ID_BYTES)
        self._comm = ctypes.c_void_p()
        with torch.cuda.device(self.device):  # NCCL binds the communicator to the current device
            _check(library().ncclCommInitRank(ctypes.byref(self._comm), world_size, handle, rank))

    def average_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Replace `tensor` by its mean over the ranks, in place, on torch's current stream (one kernel: NCCL divides
        as it reduces)."""
        count, dtype, stream = self._operand(tensor)
        _check(library().ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), count, dtype, AVG, self._comm, stream))
        return tensor

    def close(self) -> None:
        if self._comm:
            _check(library().ncclCommDestroy(self._comm))
            self._comm = ctypes.c_void_p()

    def _operand(self, tensor: torch.Tensor) -> tuple[int, int, int]:
        if tensor.device != self.device or not tensor.is_contiguous() or tensor.dtype not in DATA_TYPES:
            raise ValueError(f"NCCL needs a contiguous tensor on {self.device} of {list(DATA_TYPES)}, got {tensor}")
        return tensor.numel(), DATA_TYPES[tensor.dtype], torch.cuda.current_stream(self.device).cuda_stream
