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


def measure(task_name: str, num_envs: int, epochs: int, steps: int, device: str) -> dict:
    """Measure one size in this process."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from harness.config import prepare_config, register_resolvers

    register_resolvers()
    overrides = [
        f"task={task_name}",
        f"num_envs={num_envs}",
        f"max_iterations={epochs}",
        f"sim_device={device}",
        f"rl_device={device}",
        "headless=True",
        "experiment=bench",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "cfg"), version_base="1.3"):
        cfg = prepare_config(compose("config", overrides=overrides))
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    result = {"num_envs": num_envs, **measure_stepping(task_cfg, steps, device), "training": measure_training(cfg)}
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


def measure_training(cfg) -> float:
    """End-to-end PPO env steps/s: the median epoch after two warm-up epochs (allocations, autotuning)."""
    from omegaconf import OmegaConf

    from harness.progress import ProgressObserver
    from harness.rlgames import build_runner, register_env
    from harness.tasks import make_task
    from harness.training import rl_games_params

    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    observer = ProgressObserver()
    register_env(lambda: make_task(task_cfg, cfg.sim_device, cfg.rl_device))
    runner = build_runner(rl_games_params(cfg, "bench"), observer)
    runner.run({"train": True, "play": False, "checkpoint": None, "sigma": None})
    return statistics.median(observer.steps_per_s[2:])


def run_all(args) -> dict:
    rows = []
    for num_envs in args.num_envs:
        with tempfile.TemporaryDirectory() as workdir:  # the training run folder goes here, not into the repo
            cmd = [
                sys.executable,
                __file__,
                "--one",
                str(num_envs),
                "--task",
                args.task,
                "--epochs",
                str(args.epochs),
                "--steps",
                str(args.steps),
                "--device",
                args.device,
            ]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs measured per size")
    parser.add_argument("--steps", type=int, default=200, help="timed env steps for physics and env stepping")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.task, args.one, args.epochs, args.steps, args.device)))
        return
    env = environment(args.device)
    command = " ".join(["python", "bench/throughput.py", *sys.argv[1:]])
    result = {"task": args.task, **env, "command": command, **run_all(args)}
    print_table(args.task, env, result["rows"])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{env['date'][:10]}-{args.task}-throughput-{env['device'].replace(' ', '_')}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
