"""Ranks setting up harness.ipc_all_reduce on the CPU, for tests/test_multi_gpu.py. Rank FAILING's own part of the
set-up fails as it does on any CPU (Warp shares no CPU memory through CUDA IPC); the other ranks' exports are made to
succeed, as on GPUs. Every rank must come to the same decision (averaging through NCCL instead) and leave the gloo
group in step: each prints what was decided and the sum of the ranks over one more all-reduce.

    torchrun --standalone --nproc_per_node=2 tests/ipc_ranks.py FAILING
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import warp as wp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import distributed  # noqa: E402


def main() -> None:
    failing = int(sys.argv[1])
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))  # a desync errors rather than hangs
    rank = dist.get_rank()
    if rank != failing:  # a GPU's export: a 64-byte CUDA IPC handle
        wp.array.ipc_handle = lambda array: bytes([rank + 1]) * 64
    comm = distributed._ipc_all_reduce(torch.device("cpu"))
    ranks = torch.tensor([rank])
    dist.all_reduce(ranks)
    print(f"rank {rank}: {'IPC' if comm else 'NCCL'}, ranks sum to {ranks.item()}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
