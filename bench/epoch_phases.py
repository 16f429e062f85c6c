"""Where an epoch's time goes on the GPU's own clock, by part: CUDA events recorded in the stream, no added waits.

    python bench/epoch_phases.py task=Ant num_envs=4096 max_iterations=60 headless=True
    torchrun --standalone --nproc_per_node=2 bench/epoch_phases.py task=Ant multi_gpu=True ...   (a line per rank)

Runs train.py with these overrides (from the current folder, where the run folder goes) and prints the medians,
over the epochs after the fifth, of: the epoch (start to the next epoch's start, on the GPU and on the host), the
rollout, the returns and the dataset, the update (its minibatches), and the gap from the update's end to the next
rollout's start, which is the GPU waiting for the host at the epoch's seam. A second line tells the start: when the
agent was built and the first epoch began, and the first three epochs' rollout and update on the host's clock (where
the graphs are captured, and where ranks wait for each other). GPU only.
"""

from __future__ import annotations

import atexit
import os
import runpy
import statistics
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()  # before the imports of torch and rl_games, which take seconds
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from rl_games.common.a2c_common import ContinuousA2CBase  # noqa: E402

from harness.rl import rollout, update  # noqa: E402
from harness.rl.progress import ProgressObserver  # noqa: E402

epochs: list[dict] = []  # per epoch: mark name -> (CUDA event, host time)
agent_built: list[float] = []  # the host time of the progress observer's after_init


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
    print(f"{rank}start: {start_line()}", flush=True)


def start_line() -> str:
    """When the agent was built and training began (this process's seconds, and the machine's monotonic clock, which
    every rank reads alike), and the first epochs' rollout, update and seam on the host's clock."""
    first = epochs[0]["start"][1]
    parts = [
        f"agent built {agent_built[0] - STARTED:.2f} s after this script started, the first epoch began "
        f"{first - agent_built[0]:.2f} s later (monotonic clock {first:.3f} s)"
    ]
    for n in range(1, min(4, len(epochs))):
        epoch, after = epochs[n - 1], epochs[n]
        rollout_ms = (epoch["rollout"][1] - epoch["start"][1]) * 1e3
        update_ms = (epoch["end"][1] - epoch["dataset"][1]) * 1e3
        seam_ms = (after["start"][1] - epoch["end"][1]) * 1e3
        parts.append(f"epoch {n}: rollout {rollout_ms:.0f} ms, update {update_ms:.0f} ms, seam {seam_ms:.0f} ms")
    return "; ".join(parts)


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("bench/epoch_phases.py times the GPU's stream: it needs a GPU")
    wrap(update.SyncFreeUpdate, "queue_epoch", before="start", after="end")
    wrap(rollout.SyncFreeRollout, "play_steps", after="rollout")
    wrap(ContinuousA2CBase, "prepare_dataset", after="dataset")
    after_init = ProgressObserver.after_init

    def built(self, algo) -> None:
        agent_built.append(time.perf_counter())
        after_init(self, algo)

    ProgressObserver.after_init = built
    atexit.register(report)
    sys.argv = [str(ROOT / "train.py"), *sys.argv[1:]]
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")


if __name__ == "__main__":
    main()
