"""Where an epoch's time goes on the GPU's own clock, by part: CUDA events recorded in the stream, no added waits.

    python bench/epoch_phases.py task=Ant num_envs=4096 max_iterations=60 headless=True
    torchrun --standalone --nproc_per_node=2 bench/epoch_phases.py task=Ant multi_gpu=True ...   (a line per rank)

Runs train.py with these overrides (from the current folder, where the run folder goes) and prints the medians,
over the epochs after the fifth, of: the epoch (start to the next epoch's start, on the GPU and on the host), the
rollout, the returns and the dataset, the update (its minibatches), and the gap from the update's end to the next
rollout's start, which is the GPU waiting for the host at the epoch's seam. GPU only.
"""

from __future__ import annotations

import atexit
import os
import runpy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from rl_games.common.a2c_common import ContinuousA2CBase  # noqa: E402

from harness.rl import rollout, update  # noqa: E402

epochs: list[dict] = []  # per epoch: mark name -> (CUDA event, host time)


def mark(name: str) -> None:
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    epochs[-1][name] = (event, time.perf_counter())


def wrap(cls, method: str, before: str | None = None, after: str | None = None) -> None:
    original = getattr(cls, method)

    def marked(self, *args, **kwargs):
        if before:
            epochs.append({})
            mark(before)
        result = original(self, *args, **kwargs)
        if after:
            mark(after)
        return result

    setattr(cls, method, marked)


def report() -> None:
    torch.cuda.synchronize()
    rows = epochs[5:]

    def gpu_ms(a: str, b: str, shift: int = 0) -> float:
        return statistics.median(rows[i][a][0].elapsed_time(rows[i + shift][b][0]) for i in range(len(rows) - shift))

    host_ms = statistics.median((rows[i + 1]["start"][1] - rows[i]["start"][1]) * 1e3 for i in range(len(rows) - 1))
    rank = f"rank {os.environ['RANK']}, " if "RANK" in os.environ else ""
    print(
        f"{rank}{' '.join(sys.argv[1:])}: {len(rows)} epochs; epoch {gpu_ms('start', 'start', 1):.2f} ms on the GPU, "
        f"{host_ms:.2f} ms on the host; rollout {gpu_ms('start', 'rollout'):.2f} ms; returns and dataset "
        f"{gpu_ms('rollout', 'dataset'):.2f} ms; update {gpu_ms('dataset', 'end'):.2f} ms; update's end to the next "
        f"rollout {gpu_ms('end', 'start', 1):.2f} ms",
        flush=True,
    )


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("bench/epoch_phases.py times the GPU's stream: it needs a GPU")
    wrap(update.SyncFreeUpdate, "queue_epoch", before="start", after="end")
    wrap(rollout.SyncFreeRollout, "play_steps", after="rollout")
    wrap(ContinuousA2CBase, "prepare_dataset", after="dataset")
    atexit.register(report)
    sys.argv = [str(ROOT / "train.py"), *sys.argv[1:]]
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")


if __name__ == "__main__":
    main()
