"""Env steps per second of a task: physics only, env stepping, end-to-end PPO training; and GPU memory.

    python bench/throughput.py --task Ant --num-envs 4096 16384 --epochs 30

Each size runs in its own process (clean memory figures); the table is printed and saved as JSON under
bench/results/ with the date, device, versions and command.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(args: argparse.Namespace) -> dict:
    """Measure one size (`args.one` envs) in this process."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from harness.config import prepare_config
    from harness.resolvers import register_resolvers

    register_resolvers()
    device = args.device
    overrides = [
        f"task={args.task}",
        f"num_envs={args.one}",
        f"max_iterations={args.epochs}",
        f"sim_device={device}",
        f"rl_device={device}",
        "headless=True",
        "experiment=bench",
        *args.override,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "cfg"), version_base="1.3"):
        cfg = prepare_config(compose("config", overrides=overrides))
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    result = {"num_envs": args.one, **measure_stepping(task_cfg, args.steps, device), **measure_training(cfg)}
    if device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info()
        result["gpu_memory_used_gib"] = (total - free) / 2**30
    return result


def measure_stepping(task_cfg: dict, steps: int, device: str) -> dict:
    """Env steps/s of the physics alone (random controls) and of whole env steps (random actions)."""
    import torch

    from harness.tasks import make_task

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    start = time.perf_counter()
    task = make_task(task_cfg, device, device)
    task.reset()
    sync()
    build_s = time.perf_counter() - start
    actions = torch.zeros(task.num_envs, task.num_actions, device=device)

    def rate(fn) -> float:
        for _ in range(10):
            fn()
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        return task.num_envs * steps / (time.perf_counter() - t)

    def physics_only() -> None:
        task.sim.ctrl.uniform_(-1.0, 1.0)
        task.sim.step()

    return {
        "env_build_s": build_s,
        "physics_only": rate(physics_only),
        "env_step": rate(lambda: task.step(actions.uniform_(-1.0, 1.0))),
    }


def measure_training(cfg) -> dict:
    """End-to-end PPO env steps/s and where an epoch's time goes; medians of the epochs after two warm-up ones."""
    from omegaconf import OmegaConf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from harness.progress import ProgressObserver
    from harness.rlgames import build_runner, register_env
    from harness.tasks import make_task
    from harness.training import rl_games_params

    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    observer = ProgressObserver()
    register_env(lambda: make_task(task_cfg, cfg.sim_device, cfg.rl_device))
    runner = build_runner(rl_games_params(cfg, "bench"), observer)
    runner.run({"train": True, "play": False, "checkpoint": None, "sigma": None})
    observer.algo.writer.flush()
    scalars = EventAccumulator("runs/bench/summaries")
    scalars.Reload()
    # rl_games' own timers, seconds per epoch: env steps; env steps plus policy inference; the PPO update.
    times = {
        name: statistics.median(event.value for event in scalars.Scalars(f"performance/{tag}")[2:])
        for name, tag in (
            ("epoch_env_s", "step_time"),
            ("epoch_rollout_s", "step_inference_time"),
            ("epoch_update_s", "rl_update_time"),
        )
    }
    return {"training": statistics.median(observer.steps_per_s[2:]), **times}


def run_all(args) -> dict:
    rows = []
    for num_envs in args.num_envs:
        with tempfile.TemporaryDirectory() as workdir:  # the training run folder goes here, not into the repo
            options = {
                "--one": num_envs,
                "--task": args.task,
                "--epochs": args.epochs,
                "--steps": args.steps,
                "--device": args.device,
            }
            cmd = [sys.executable, __file__, *(str(x) for kv in options.items() for x in kv)]
            cmd += [f"--override={override}" for override in args.override]
            out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                sys.exit(f"measuring num_envs={num_envs} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            # Warp kernels may print to stdout too: the result is the last JSON line.
            rows.append(json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1]))
    return {"rows": rows}


def environment(device: str) -> dict:
    import mujoco_warp
    import torch
    import warp

    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu"
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": name,
        "torch": torch.__version__,
        "warp": warp.__version__,
        "mujoco_warp": mujoco_warp.__version__,
        "python": platform.python_version(),
    }


def print_table(task: str, env: dict, rows: list[dict]) -> None:
    print(f"\n{task} on {env['device']} ({env['date']})")
    print(
        f"{'num_envs':>9} | {'physics only':>13} | {'env step':>13} {'ratio':>6} | {'training':>13} {'ratio':>6}"
        f" | {'GPU mem':>8}"
    )
    for r in rows:
        mem = f"{r['gpu_memory_used_gib']:.1f} GiB" if "gpu_memory_used_gib" in r else "-"
        physics = r["physics_only"]
        print(
            f"{r['num_envs']:>9} | {physics:>13,.0f} | {r['env_step']:>13,.0f} {r['env_step'] / physics:>6.2f}"
            f" | {r['training']:>13,.0f} {r['training'] / physics:>6.2f} | {mem:>8}"
        )
    print("(env steps per second; ratios to physics only)")
    for r in rows:
        env_ms, rollout_ms, update_ms = (1000 * r[key] for key in ("epoch_env_s", "epoch_rollout_s", "epoch_update_s"))
        print(
            f"{r['num_envs']:>9} envs, one epoch: env steps {env_ms:.1f} ms, policy inference "
            f"{rollout_ms - env_ms:.1f} ms, PPO update {update_ms:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs measured per size")
    parser.add_argument("--steps", type=int, default=200, help="timed env steps for physics and env stepping")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--override",
        nargs="+",
        action="extend",
        default=[],
        help="extra Hydra overrides, e.g. +train.params.config.torch_compile=True",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args)))
        return
    env = environment(args.device)
    command = " ".join(["python", "bench/throughput.py", *sys.argv[1:]])
    result = {"task": args.task, **env, "command": command, **run_all(args)}
    print_table(args.task, env, result["rows"])
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = env["date"][:16].replace(":", "")
    stem = f"{stamp}-{args.task}-throughput-{env['device'].replace(' ', '_')}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
