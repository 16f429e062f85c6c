"""Multi-GPU scaling of end-to-end training: total env steps/s at 1, 2, ... GPUs with the same envs per GPU.

    python bench/scaling.py --gpus 1 2 --num-envs 4096 --epochs 40 --single-rank [--rounds 4] [--all-reduce auto nccl]

Runs the real train.py (under torchrun with multi_gpu=True for more than one GPU, and with --single-rank also
for one, which shows what the multi-GPU path itself costs) in a temporary folder, reads rank 0's progress
lines, prints a table and writes it as JSON under bench/results/. Identical several-GPU runs spread by several
percent (2026-11-26: 1.69-1.85x at 4096 envs per GPU within ten minutes), so `--rounds N` runs every configuration
N times, alternating, and reports medians with the range of the speed-up. `--all-reduce` runs every torchrun
configuration once with each of the given HARNESS_ALL_REDUCE values (harness.distributed), in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.distributed import ALL_REDUCE_CHOICES  # noqa: E402

PROGRESS = re.compile(r"^epoch +(\d+)/\d+ \| +([\d,]+) steps/s")


def train_command(gpus: int, overrides: list[str], torchrun: bool = False) -> list[str]:
    """`python train.py OVERRIDES`; for several GPUs (or with torchrun=True) under torchrun with multi_gpu=True."""
    if gpus == 1 and not torchrun:
        return [sys.executable, str(ROOT / "train.py"), *overrides]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc_per_node={gpus}"]
    return [*launcher, str(ROOT / "train.py"), *overrides, "multi_gpu=True"]


def train_rate(gpus: int, args, torchrun: bool = False, all_reduce: str | None = None) -> float:
    """Median total env steps/s over the epochs after the first three (warm-up) of one training run."""
    overrides = [
        f"task={args.task}",
        f"num_envs={args.num_envs}",
        f"max_iterations={args.epochs}",
        "headless=True",
        f"experiment=scaling_{gpus}",
        *args.override,
    ]
    with tempfile.TemporaryDirectory() as workdir:
        cmd = train_command(gpus, overrides, torchrun)
        env = {**os.environ, "HARNESS_ALL_REDUCE": all_reduce} if all_reduce else None
        try:
            out = subprocess.run(
                cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False, timeout=args.timeout
            )
        except subprocess.TimeoutExpired as hung:
            output = f"{_tail(hung.stdout)}\n{_tail(hung.stderr)}"
            sys.exit(f"training on {gpus} GPU(s) ran past {args.timeout:g} s:\n{output}")
    if out.returncode != 0:
        sys.exit(f"training on {gpus} GPU(s) failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    rates = [
        float(m[2].replace(",", ""))
        for line in out.stdout.splitlines()
        if (m := PROGRESS.match(line)) and int(m[1]) > 3
    ]
    return statistics.median(rates)


def _tail(output: str | bytes | None) -> str:
    text = output.decode(errors="replace") if isinstance(output, bytes) else output or ""
    return text[-3000:]


def measure_rows(args) -> list[dict]:
    """Every configuration once per round, the rounds one after another (so that drift on the machine reaches each
    configuration alike); each row's rate is the median over the rounds, and its speed-up the median of the rounds'
    ratios to the first row's rate per GPU in the same round, with their range."""
    launches = [(gpus, False) for gpus in args.gpus]
    if args.single_rank:
        launches.insert(1, (1, True))
    configs = [
        (gpus, torchrun, all_reduce)
        for gpus, torchrun in launches
        for all_reduce in (args.all_reduce if torchrun or gpus > 1 else [None])
    ]
    rates = {config: [] for config in configs}
    for _ in range(args.rounds):
        for config in configs:
            gpus, torchrun, all_reduce = config
            rates[config].append(train_rate(gpus, args, torchrun=torchrun, all_reduce=all_reduce))
    base_gpus = configs[0][0]
    rows = []
    for config in configs:
        gpus, torchrun, all_reduce = config
        runs = rates[config]
        ratios = [rate / (base / base_gpus) for rate, base in zip(runs, rates[configs[0]], strict=True)]
        rows.append(
            {
                "gpus": gpus,
                "launch": "torchrun" if torchrun or gpus > 1 else "train.py",
                "all_reduce": all_reduce,
                "env_steps_per_s": statistics.median(runs),
                "runs": runs,
                "speed_up": statistics.median(ratios),
                "speed_up_range": [min(ratios), max(ratios)],
            }
        )
    return rows


def print_table(rows: list[dict], rounds: int) -> None:
    if rounds > 1:
        print(f"(medians of {rounds} rounds; speed-up: of each round's ratio, with the rounds' range)")
    print(f"{'GPUs':>5} | {'launch':>9} | {'all-reduce':>10} | {'total env steps/s':>18} | speed-up | efficiency")
    for row in rows:
        low, high = row["speed_up_range"]
        spread = f" | {low:.2f}-{high:.2f}x" if rounds > 1 else ""
        launch = f"{row['gpus']:>5} | {row['launch']:>9} | {row['all_reduce'] or '-':>10}"
        print(
            f"{launch} | {row['env_steps_per_s']:>18,.0f} | {row['speed_up']:>7.2f}x"
            f" | {row['speed_up'] / row['gpus']:>9.0%}{spread}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--num-envs", type=int, default=4096, help="envs per GPU")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument(
        "--single-rank", action="store_true", help="also one GPU under torchrun with multi_gpu=True (its overhead)"
    )
    parser.add_argument("--override", nargs="+", action="extend", default=[], help="extra Hydra overrides")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one training run may take")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every configuration, alternating")
    parser.add_argument(
        "--all-reduce",
        nargs="+",
        choices=ALL_REDUCE_CHOICES,
        default=[os.environ.get("HARNESS_ALL_REDUCE", "auto")],
        help="HARNESS_ALL_REDUCE values for the torchrun configurations, each run in every round",
    )
    args = parser.parse_args()
    import torch

    rows = measure_rows(args)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(f"\n{args.task}, {args.num_envs} envs per GPU, on {device} ({date})")
    print_table(rows, args.rounds)
    result = {
        "task": args.task,
        "date": date,
        "device": device,
        "num_envs_per_gpu": args.num_envs,
        "all_reduce": args.all_reduce,
        "rounds": args.rounds,
        "command": " ".join(["python", "bench/scaling.py", *sys.argv[1:]]),
        "torch": torch.__version__,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{date[:16].replace(':', '')}-{args.task}-scaling.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
