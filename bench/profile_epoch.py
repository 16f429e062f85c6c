"""Where a training epoch's time goes: torch.profiler over a few epochs after warm-up, or over the first ones.

    python bench/profile_epoch.py --task Ant --num-envs 4096
    python bench/profile_epoch.py --task Ant --num-envs 4096 --warmup 0 --epochs 1
    torchrun --standalone --nproc_per_node=1 bench/profile_epoch.py --task Ant --num-envs 4096 --multi-gpu

Prints the wall-clock time of an epoch, the GPU's kernel time in it (how busy the GPU was) and the heaviest
kernels; writes a Chrome trace (open in https://ui.perfetto.dev) and the table under --out. With `--warmup 0` it
records from the start of training (the epochs that capture the graphs): the table is sorted by the host's time, which
is what a first epoch spends, and Python's own profile of the training (functions by cumulative time) follows it, since
most of that time is outside torch's operations (captures, Warp's kernels loaded).
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=10, help="epochs before profiling (0: from the start)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs profiled")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--multi-gpu", action="store_true", help="under torchrun: the multi-GPU path (rank 0 reports)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from harness import distributed

    cfg = training_config(args)
    args.device = str(cfg.rl_device)  # what training uses: the CPU where no GPU is found, a rank's own GPU
    if cfg.multi_gpu:
        distributed.init_process_group(cfg.rl_device)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)  # the run folder goes here, not into the repo, and is deleted after
        profiles = profile_training(cfg, args)
        os.chdir(out)
    reporting = distributed.rank() == 0
    distributed.close_process_group()
    if reporting:
        stem = f"profile-{args.task}-{args.num_envs}" + "-multi-gpu" * args.multi_gpu
        report(*profiles, args, out / stem)


def training_config(args: argparse.Namespace):
    from harness.config import compose_config

    overrides = [f"task={args.task}", f"num_envs={args.num_envs}", f"max_iterations={args.warmup + args.epochs}"]
    overrides += [f"sim_device={args.device}", f"rl_device={args.device}", f"multi_gpu={args.multi_gpu}"]
    return compose_config([*overrides, "headless=True", "experiment=profile"])


def profile_training(cfg, args: argparse.Namespace) -> tuple:
    """Train under torch.profiler, from when the agent is built: the epochs after the warm-up (all of them with none,
    and cProfile too); also when training starts and each epoch's end (host clock, after a device sync)."""
    import cProfile

    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    from harness.rl.progress import ProgressObserver
    from harness.rl.trainer import build_trainer, rl_games_params

    cuda, epoch_ends = args.device.startswith("cuda"), []
    profiler = profile(
        activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])],
        schedule=schedule(wait=args.warmup - 1, warmup=1, active=args.epochs) if args.warmup else None,
    )

    python_profile = None if args.warmup else cProfile.Profile()

    class EpochProfiler(ProgressObserver):
        def after_init(self, algo):  # the agent and its envs are built: training starts
            super().after_init(algo)
            epoch_ends.append(time.perf_counter())
            profiler.start()
            if python_profile is not None:
                python_profile.enable()

        def after_print_stats(self, frame, epoch_num, total_time):
            super().after_print_stats(frame, epoch_num, total_time)
            if cuda:
                torch.cuda.synchronize()
            epoch_ends.append(time.perf_counter())
            profiler.step()

    runner = build_trainer(cfg, rl_games_params(cfg, "profile"), [EpochProfiler()])
    try:
        runner.run({"train": True, "play": False, "checkpoint": None, "sigma": None})
    finally:
        if epoch_ends:  # (the profilers started: the agent was built)
            if python_profile is not None:
                python_profile.disable()
            profiler.stop()
    return profiler, epoch_ends, python_profile


def report(profiler, epoch_ends: list, python_profile, args: argparse.Namespace, stem: Path) -> None:
    """Print and write the epoch's wall-clock and GPU time and the heaviest kernels; the Chrome trace beside them."""
    import torch

    cuda = args.device.startswith("cuda")
    profiled = epoch_ends[args.warmup : args.warmup + args.epochs + 1]  # from the end of the last unprofiled epoch
    wall_ms = 1000 * (profiled[-1] - profiled[0]) / (len(profiled) - 1)
    events = profiler.key_averages()
    # Kernels and copies only: the profiler's per-epoch ranges ("ProfilerStep#N") span them.
    kernels = [event for event in events if not event.key.startswith("ProfilerStep")]
    gpu_ms = sum(event.self_device_time_total for event in kernels) / 1000 / args.epochs
    by_device = cuda and args.warmup > 0  # (the first epochs wait on the host: captures, kernels loaded)
    table = events.table(sort_by="self_device_time_total" if by_device else "self_cpu_time_total", row_limit=25)
    device = torch.cuda.get_device_name(args.device) if cuda else "cpu"
    if args.warmup:
        epochs = "an epoch takes"
    else:
        epochs = "the first epoch takes" if args.epochs == 1 else f"the first {args.epochs} epochs take"
    summary = (
        f"{args.task}, {args.num_envs} envs on {device}: {epochs} {wall_ms:.1f} ms{' each' * (args.epochs > 1)} "
        f"(wall clock, profiled, with a device sync per epoch); GPU kernels and copies {gpu_ms:.1f} ms"
    )
    if cuda:  # Warp's kernels are named <function>_<hash>_cuda_kernel_forward: the physics (MuJoCo Warp)
        warp_ms = sum(e.self_device_time_total for e in kernels if e.key.endswith("_cuda_kernel_forward"))
        warp_ms /= 1000 * args.epochs
        summary += f", of which Warp kernels {warp_ms:.1f} ms and the rest (torch) {gpu_ms - warp_ms:.1f} ms"
    if python_profile is not None:
        functions = io.StringIO()
        pstats.Stats(python_profile, stream=functions).sort_stats("cumulative").print_stats(40)
        table += "\n" + functions.getvalue()
    print(table)
    print(summary)
    stem.with_suffix(".txt").write_text(summary + "\n\n" + table + "\n")
    profiler.export_chrome_trace(str(stem.with_suffix(".json")))


if __name__ == "__main__":
    main()
