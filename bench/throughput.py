"""Env steps per second of a task: physics only, env stepping (eager, one CUDA graph, graph + torch.compile),
policy inference and end-to-end PPO training, each also as a ratio to physics only; and GPU memory per env.
Training is timed twice on the same env and settings: the harness's agent, and rl_games' own A2CAgent (its rollout,
update and loop, as a user of rl_games alone would train), with the speed-up of the one over the other.

    python bench/throughput.py --task Ant --num-envs 4096 16384 --epochs 30

Each of the three parts (stepping; training with inference; rl_games alone) of each size runs in a process of its
own, as a user's run would: GPU code loaded into a process slows that process's small kernels for good
(bench/results/2026-11-26-capture-video-H100.md), so a part run after another's envs, graphs and torch.compile
kernels would be timed slow. The table is printed and saved as JSON under bench/results/ with the date, device,
versions and command.
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
BASELINE_GIB = [0.0]  # GPU memory in use before the first env is built (CUDA context, other processes)
PARTS = ("stepping", "training", "rl_games")  # each in a process of its own, in this order


def memory_used_gib() -> float:
    import torch

    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**30


def measure(args: argparse.Namespace) -> dict:
    """Measure one part (`args.part`) of one size (`args.one` envs) in this process."""
    import torch
    from omegaconf import OmegaConf

    from harness.config import compose_config

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
    cfg = compose_config(overrides)
    if device.startswith("cuda"):
        torch.zeros(1, device=device)  # creates the CUDA context
        BASELINE_GIB[0] = memory_used_gib()
    if args.part == "stepping":
        result = measure_stepping(OmegaConf.to_container(cfg.task, resolve=True), args.steps, device)
    elif args.part == "training":
        result = measure_training(cfg)
    else:
        return {"training_rl_games": measure_rl_games_training(cfg)}
    if device.startswith("cuda"):  # (the training process's, where it runs: what a run holds)
        result["gpu_memory_used_gib"] = memory_used_gib() - BASELINE_GIB[0]
    return result


def measure_stepping(task_cfg: dict, steps: int, device: str) -> dict:
    """Env steps/s of the physics alone (random controls) and of whole env steps (random actions): eager,
    captured as a CUDA graph, and captured with the task math fused by torch.compile."""
    import torch

    from harness.graph_checks import compare_graph_with_eager
    from harness.tasks import make_task

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    start = time.perf_counter()
    task = make_task(task_cfg, device, device)
    task.reset()
    sync()
    result = {"env_build_s": time.perf_counter() - start}
    actions = torch.zeros(task.num_envs, task.num_actions, device=device)

    def rate(fn) -> float:
        for _ in range(10):  # the first env steps capture the graph (and compile)
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

    def env_step() -> None:
        task.step(actions.uniform_(-1.0, 1.0))

    result["physics_only"] = rate(physics_only)
    task.set_step_mode(graph=False)
    result["env_step_eager"] = rate(env_step)
    if cuda:
        result["graph_vs_eager_max_abs_diff"] = compare_graph_with_eager(task)
        result["env_step"] = rate(env_step)
        task.set_step_mode(graph=True, compiled=True)
        result["env_step_compiled"] = rate(env_step)
        result["env_memory_gib"] = memory_used_gib() - BASELINE_GIB[0]
    else:
        result["env_step"] = result["env_step_eager"]
    return result


def measure_training(cfg) -> dict:
    """End-to-end PPO env steps/s and where an epoch's time goes; medians of the epochs after two warm-up ones."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from harness.graph_checks import (
        compare_policy_graph_with_eager,
        compare_rollout_eager_with_itself,
        compare_rollout_graph_with_eager,
        compare_update_graph_with_eager,
    )
    from harness.rl.progress import ProgressObserver
    from harness.rl.trainer import build_trainer, rl_games_params

    observer = ProgressObserver()
    runner = build_trainer(cfg, rl_games_params(cfg, "bench"), [observer])
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
    agent = observer.algo
    result = {"training": statistics.median(observer.steps_per_s[2:]), **times}
    if agent._update_graph is not None:
        result["update_graph_vs_eager_max_abs_diff"] = compare_update_graph_with_eager(agent)
    if agent._policy_graph is not None:
        result["policy_graph_vs_eager_max_abs_diff"] = compare_policy_graph_with_eager(agent)
    if agent._rollout_graph is not None:
        # per stored tensor, and the same for eager against eager: the GPU physics' own spread over a rollout
        result["rollout_graph_vs_eager"] = compare_rollout_graph_with_eager(agent)
        result["rollout_eager_vs_eager"] = compare_rollout_eager_with_itself(agent)
        result["rollout_graph_vs_eager_max_abs_diff"] = max(result["rollout_graph_vs_eager"].values())
        result["rollout_eager_vs_eager_max_abs_diff"] = max(result["rollout_eager_vs_eager"].values())
    result["policy_inference"] = measure_inference(agent)
    return result


def measure_rl_games_training(cfg) -> float:
    """End-to-end PPO env steps/s of rl_games' own A2CAgent on the same env and settings (median of the epochs after
    two warm-up ones)."""
    from harness.rl.progress import ProgressObserver
    from harness.rl.seam import A2CAgent
    from harness.rl.trainer import build_trainer, rl_games_params

    observer = ProgressObserver()
    runner = build_trainer(cfg, rl_games_params(cfg, "bench_rl_games"), [observer], agent=A2CAgent)
    runner.run({"train": True, "play": False, "checkpoint": None, "sigma": None})
    return statistics.median(observer.steps_per_s[2:])


def measure_inference(agent, calls: int = 100) -> float:
    """Env steps/s of the trained policy alone: rl_games' action sampling on the last observations, as the
    rollout runs it (replayed from its CUDA graph on CUDA)."""
    import torch

    sync = torch.cuda.synchronize if agent.ppo_device.startswith("cuda") else (lambda: None)
    agent.set_eval()
    with torch.no_grad():
        for _ in range(10):
            agent.get_action_values(agent.obs)
        sync()
        start = time.perf_counter()
        for _ in range(calls):
            agent.get_action_values(agent.obs)
        sync()
    return agent.num_actors * calls / (time.perf_counter() - start)


def run_all(args) -> dict:
    rows = []
    parts = PARTS if args.epochs > 0 else PARTS[:1]
    for num_envs in args.num_envs:
        row = {"num_envs": num_envs}
        with tempfile.TemporaryDirectory() as workdir:  # the training run folders go here, not into the repo
            for part in parts:
                row.update(measure_in_a_process(args, num_envs, part, workdir))
        rows.append(row)
    return {"rows": rows}


def measure_in_a_process(args, num_envs: int, part: str, workdir: str) -> dict:
    options = {
        "--one": num_envs,
        "--part": part,
        "--task": args.task,
        "--epochs": args.epochs,
        "--steps": args.steps,
        "--device": args.device,
    }
    cmd = [sys.executable, __file__, *(str(x) for kv in options.items() for x in kv)]
    cmd += [f"--override={override}" for override in args.override]
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"measuring {part} at num_envs={num_envs} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    # Warp kernels may print to stdout too: the result is the last JSON line.
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def environment(device: str) -> dict:
    import mujoco_warp
    import torch
    import warp

    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {device}: this machine has no CUDA GPU that torch can use; pass --device cpu")
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
    print(f"\n{task} on {env['device']} ({env['date']}): env steps per second, and as a ratio to physics only")
    columns = [
        ("physics only", "physics_only"),
        ("env step eager", "env_step_eager"),
        ("env step", "env_step"),
        ("+ compiled", "env_step_compiled"),
        ("policy inference", "policy_inference"),
        ("training", "training"),
        ("rl_games alone", "training_rl_games"),
    ]
    print(f"{'num_envs':>9} | " + " | ".join(f"{name:>22}" for name, _ in columns) + f" | {'GPU memory (per env)':>24}")
    for r in rows:
        cells = []
        for _, key in columns:
            value = r.get(key)
            cells.append(f"{value:>13,.0f} ({value / r['physics_only']:5.2f})" if value else f"{'-':>22}")
        mem = r.get("gpu_memory_used_gib")
        mem = f"{mem:.2f} GiB ({mem * 2**20 / r['num_envs']:.0f} KiB)" if mem else "-"
        print(f"{r['num_envs']:>9} | " + " | ".join(cells) + f" | {mem:>24}")
    for r in rows:
        diffs = [
            f"{name} {r[key]:.1e}"
            for name, key in (
                ("env step", "graph_vs_eager_max_abs_diff"),
                ("policy", "policy_graph_vs_eager_max_abs_diff"),
                ("rollout", "rollout_graph_vs_eager_max_abs_diff"),
                ("rollout eager against eager", "rollout_eager_vs_eager_max_abs_diff"),
                ("PPO minibatch step", "update_graph_vs_eager_max_abs_diff"),
            )
            if key in r
        ]
        if diffs:
            print(f"{r['num_envs']:>9} envs, CUDA graph vs eager, largest difference: " + ", ".join(diffs))
    for r in rows:
        if r.get("training_rl_games"):
            print(
                f"{r['num_envs']:>9} envs, training: {r['training'] / r['training_rl_games']:.2f}x the env steps/s of "
                "rl_games' own A2CAgent on the same env and settings (each in a process of its own)"
            )
    for r in rows:
        if "epoch_env_s" in r:
            env_ms, rollout_ms, update_ms = (1000 * r[k] for k in ("epoch_env_s", "epoch_rollout_s", "epoch_update_s"))
            print(
                f"{r['num_envs']:>9} envs, one epoch (host clock, GPU work overlaps): env step calls {env_ms:.1f} ms, "
                f"rollout {rollout_ms:.1f} ms, PPO update {update_ms:.1f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs measured per size (0: none)")
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
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
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
