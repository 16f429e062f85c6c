"""Wall time to a mean episode reward, and start-up time, of real `train.py` runs (one per seed).

    python bench/time_to_reward.py --task Ant --seeds 1 2 3 --reward 5000 --override max_iterations=300
    python bench/time_to_reward.py --task Humanoid --seeds 1 2 3 4 5 --reward 6000 --side-by-side 4   # 4 GPUs

For each seed: seconds from the command to the first epoch line (start-up; the first run on a machine
also compiles MuJoCo Warp's kernels), and from rl_games' own TensorBoard curve (reward against seconds
since training began) the seconds and epochs until the mean episode reward first reaches --reward, and how
long the first epoch took of them (its one-time costs: graph captures, kernels' first loads, on several GPUs the
ranks' meeting).
Prints a table and writes it, with each run's reward-vs-seconds curve, as JSON under bench/results/; each seed's
row is printed, and the JSON written, as soon as its run ends, so a sweep cut short keeps its finished seeds.
With --side-by-side N, N seeds train at once, each on GPUs of its own (CUDA_VISIBLE_DEVICES): on a machine of
several GPUs a sweep of seeds takes a fraction of the time (runs side by side on separate GPUs of one H100 host
lost under 1% to each other, bench/results/2026-11-26-multi-gpu-what-costs-H100x2.md).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from scaling import train_command  # noqa: E402  (bench/ is not a package)
from throughput import environment  # noqa: E402


def train_once(task: str, seed: int, args, workdir: Path, env: dict | None = None) -> dict:
    """Run train.py for one seed in `workdir` (under torchrun for several GPUs); time its start-up and read back
    its reward curve (rank 0's envs)."""
    experiment = f"{task}_seed{seed}"
    overrides = [f"task={task}", f"seed={seed}", f"experiment={experiment}", "headless=True", *args.override]
    cmd = train_command(args.gpus, overrides)
    start = time.perf_counter()
    startup_s, tail = None, []
    options = {"cwd": workdir, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "env": env}
    with subprocess.Popen(cmd, **options) as proc:
        for line in proc.stdout:
            if startup_s is None and line.startswith("epoch "):
                startup_s = time.perf_counter() - start
            tail = [*tail[-40:], line.rstrip()]
    if proc.returncode != 0:
        sys.exit(f"train.py failed for seed {seed}:\n" + "\n".join(tail))
    clock = training_clock(workdir / "runs" / experiment / "summaries")
    return {"seed": seed, "startup_s": startup_s, "wall_s": time.perf_counter() - start, **clock}


def training_clock(summaries: Path) -> dict:
    """rl_games' mean episode reward per epoch with the harness's seconds since training began (`curve`), and those
    seconds at the first epoch's report (`first_epoch_s`: the envs' reset, on several GPUs the ranks' meeting, and the
    first epoch with its graph captures)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = EventAccumulator(str(summaries))
    scalars.Reload()
    seconds = {event.step: event.value for event in scalars.Scalars("performance/elapsed_s")}
    by_frame, by_epoch = scalars.Scalars("rewards/step"), scalars.Scalars("rewards/iter")
    curve = [
        {"epoch": e.step, "seconds": round(seconds[f.step], 2), "reward": round(f.value, 1)}
        for f, e in zip(by_frame, by_epoch, strict=True)
    ]
    return {"first_epoch_s": round(seconds[min(seconds)], 2), "curve": curve}


def run_seeds(args, workdir: Path, empty_cache: Path, on_done) -> None:
    """Every seed's run, in seed order: --side-by-side at a time, the k-th slot on the k-th group of --gpus GPUs
    (of those CUDA_VISIBLE_DEVICES shows, if set); `on_done` gets each run as it ends. With --cold-first the first
    seed runs alone, before the others."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    visible = visible if visible != [""] else [str(i) for i in range(args.side_by_side * args.gpus)]
    slots = queue.Queue()
    for k in range(args.side_by_side):
        slots.put(",".join(visible[k * args.gpus : (k + 1) * args.gpus]))

    def one(seed: int, cold: bool = False) -> None:
        gpus = slots.get()
        try:
            env = dict(os.environ)
            if args.side_by_side > 1:
                env["CUDA_VISIBLE_DEVICES"] = gpus
            if cold:
                env["WARP_CACHE_PATH"] = str(empty_cache)
            run = train_once(args.task, seed, args, workdir, env)
        finally:
            slots.put(gpus)
        run.update(reached=first_reaching(run["curve"], args.reward), empty_kernel_cache=cold)
        on_done(run)

    seeds = list(args.seeds)
    if args.cold_first:
        one(seeds.pop(0), cold=True)
    with ThreadPoolExecutor(args.side_by_side) as pool:
        list(pool.map(one, seeds))  # raises what a run raised


def first_reaching(curve: list[dict], reward: float) -> dict | None:
    return next((point for point in curve if point["reward"] >= reward), None)


class Record:
    """The runs so far: each run's row is printed, and the JSON rewritten, as the run ends, so that a sweep cut
    short (a time limit, a failed seed) keeps the seeds that finished."""

    def __init__(self, args, env: dict) -> None:
        self.args, self.env, self.runs, self.lock = args, env, [], threading.Lock()
        command = " ".join(["python", "bench/time_to_reward.py", *sys.argv[1:]])
        self.result = {"task": args.task, **env, "gpus": args.gpus, "side_by_side": args.side_by_side}
        self.result.update(command=command, reward=args.reward, runs=self.runs)
        gpus = f"{args.gpus}x" if args.gpus > 1 else ""
        stem = f"{env['date'][:16].replace(':', '')}-{args.task}-time-to-reward-{gpus}{env['device'].replace(' ', '_')}"
        self.path = args.out / f"{stem}.json"

    def add(self, run: dict) -> None:
        with self.lock:
            self.runs.append(run)
            self.runs.sort(key=lambda r: r["seed"])
            self.args.out.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial")  # a kill mid-write leaves the previous record whole
            partial.write_text(json.dumps(self.result, indent=2) + "\n")
            partial.replace(self.path)
            print(f"seed {run['seed']} done: {row(run)}", flush=True)  # once recorded

    def print_table(self) -> None:
        args, env = self.args, self.env
        on = f"{args.gpus} x {env['device']}" if args.gpus > 1 else env["device"]
        print(f"\n{args.task} on {on} ({env['date']}): time to a mean episode reward of {args.reward:g}")
        print(
            f"{'seed':>5} | {'start-up':>16} | {'reached at':>22} | {'first epoch':>11} | {'final reward':>12} | "
            f"{'whole run':>9}"
        )
        for run in self.runs:
            print(f"{run['seed']:>5} | {row(run)}")
        if args.side_by_side > 1:
            print(f"({args.side_by_side} runs at a time, each on {args.gpus} GPU(s) of its own)")
        print("(start-up: command to first epoch line, cold = empty kernel cache;")
        print(" reached: seconds since training began, kernels already compiled; first epoch: of those seconds)")


def row(run: dict) -> str:
    """A run's start-up, time to the reward, final reward and whole time, as the table shows them."""
    hit = run["reached"]
    reached = f"{hit['seconds']:7.1f} s, epoch {hit['epoch']:>4}" if hit else "not reached"
    startup = f"{run['startup_s']:7.1f} s" if run["startup_s"] is not None else "-"
    startup += " (cold)" if run["empty_kernel_cache"] else ""
    first = f"{run['first_epoch_s']:7.2f} s"
    return f"{startup:>16} | {reached:>22} | {first:>11} | {run['curve'][-1]['reward']:>12.1f} | {run['wall_s']:7.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--reward", type=float, required=True, help="the mean episode reward to reach")
    parser.add_argument("--override", nargs="+", action="extend", default=[], help="extra train.py overrides")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs (torchrun processes with multi_gpu=True)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--workdir", type=Path, help="where the run folders go (default: a temporary folder)")
    parser.add_argument(
        "--cold-first", action="store_true", help="run the first seed with an empty Warp kernel cache (first start)"
    )
    parser.add_argument(
        "--side-by-side", type=int, default=1, metavar="N", help="train N seeds at once, each on --gpus GPUs of its own"
    )
    args = parser.parse_args()
    import torch

    env = environment("cuda:0" if torch.cuda.is_available() else "cpu")
    wanted, present = args.side_by_side * args.gpus, torch.cuda.device_count()
    if args.side_by_side > 1 and torch.cuda.is_available() and present < wanted:
        sys.exit(f"--side-by-side {args.side_by_side} x --gpus {args.gpus} needs {wanted} GPUs; {present} are visible")
    record = Record(args, env)
    with tempfile.TemporaryDirectory() as scratch:  # run folders go here, not into the repository
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        run_seeds(args, workdir, Path(scratch) / "empty_warp_cache", record.add)
    record.print_table()


if __name__ == "__main__":
    main()
