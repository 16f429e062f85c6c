"""What a checkpoint costs: its size and the time a save takes, with and without the episodes' state.

    python bench/checkpoint_cost.py --task Ant --num-envs 4096

Builds train.py's agent, trains a few epochs, then times `agent.save` (the weights, optimizer and the
env state that lets a resume continue the same episodes) against a save of the same file without the env
state, and the capture of that state alone. Prints a table and writes it as JSON under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from throughput import environment  # noqa: E402  (bench/ is not a package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=5, help="epochs trained before the saves")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    out = args.out.resolve()
    agent = trained_agent(args)
    rows = measure(agent, args.repeats)
    env = environment(args.device)
    print(f"\n{args.task}, {args.num_envs} envs, on {env['device']} ({env['date']}); median of {args.repeats} saves")
    for name, value in rows.items():
        print(f"{name:>30} | {value:8.3f}")
    command = " ".join(["python", "bench/checkpoint_cost.py", *sys.argv[1:]])
    result = {"task": args.task, **env, "num_envs": args.num_envs, "command": command, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{env['date'][:16].replace(':', '')}-{args.task}-checkpoint-cost"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")


def trained_agent(args: argparse.Namespace):
    """train.py's agent, in a temporary folder, after a few epochs of training."""
    from harness.config import compose_config
    from harness.rl.progress import ProgressObserver
    from harness.rl.trainer import build_trainer, create_agent, rl_games_params

    overrides = [f"task={args.task}", f"num_envs={args.num_envs}", f"sim_device={args.device}"]
    overrides += [f"rl_device={args.device}", "headless=True", "experiment=checkpoint_cost"]
    cfg = compose_config(overrides)
    os.chdir(tempfile.mkdtemp())  # the run folder goes here, not into the repo
    agent = create_agent(build_trainer(cfg, rl_games_params(cfg, "checkpoint_cost"), [ProgressObserver()]))
    for _ in range(args.epochs):
        agent.train_epoch()
    return agent


def measure(agent, repeats: int) -> dict[str, float]:
    """Median seconds of a save with and without the env state, and of capturing it; the files' sizes."""
    import torch

    from harness.checkpoints import checkpoint_path, save_atomic
    from harness.rl import resume_state

    def timed(action) -> float:
        times = []
        for _ in range(repeats):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    with_state = checkpoint_path(os.path.join(agent.nn_dir, "with_env_state"))
    weights_only = checkpoint_path(os.path.join(agent.nn_dir, "without_env_state"))

    def save_without_state() -> None:
        state = agent.get_full_state_weights()
        state["last_mean_rewards"] = float(state["last_mean_rewards"])
        save_atomic(state, weights_only)

    return {
        "save with env state (s)": timed(lambda: agent.save(str(with_state)[: -len(".pth")])),
        "save without env state (s)": timed(save_without_state),
        "env state capture alone (s)": timed(lambda: resume_state.capture(agent)),
        "file with env state (MB)": with_state.stat().st_size / 1e6,
        "file without env state (MB)": weights_only.stat().st_size / 1e6,
    }


if __name__ == "__main__":
    main()
