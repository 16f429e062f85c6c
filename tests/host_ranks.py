"""Ranks averaging through harness.ipc_all_reduce.HostAllReduce on the CPU, for tests/test_multi_gpu.py: the same
shared file, set-up, exchange and growth as on GPUs, minus CUDA's pinning. Each rank writes what it got to
report<rank>.json in the current folder (printed lines of several ranks can interleave on one pipe).

    torchrun --standalone --nproc_per_node=3 tests/host_ranks.py
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import ipc_all_reduce  # noqa: E402


def main() -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))  # a desync errors rather than hangs
    rank = dist.get_rank()
    comm = ipc_all_reduce.HostAllReduce(dist.group.WORLD, torch.device("cpu"))
    small = comm.average_(torch.arange(5, dtype=torch.float32) * (rank + 1))
    moments = comm.average_(torch.tensor([rank / 3], dtype=torch.float64))  # float64, averaged in float32
    large = comm.average_(torch.full((ipc_all_reduce.MIN_CAPACITY + 7,), float(rank)))  # the buffers grow
    try:  # more than any /dev/shm holds: rank 0 cannot make the file, and every rank must hear so
        comm._map_everyones(1 << 50)
        refused = ""
    except RuntimeError as error:
        refused = str(error)
    after_refusal = comm.average_(torch.tensor([float(rank)]))  # the exchange in place still works
    comm.close()
    report = {
        "rank": rank,
        "small": small.tolist(),
        "moments": moments.tolist(),
        "large": [large.numel(), large.min().item(), large.max().item()],
        "refused": refused,
        "after_refusal": after_refusal.tolist(),
    }
    Path(f"report{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
