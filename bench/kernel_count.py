"""How many torch operations that do work (views left out) one env step runs, by part of the step, and what the
agent adds: its rollout beyond the env steps (per step) and its update (per minibatch step).

    python bench/kernel_count.py --task Ant Humanoid Anymal FrankaCabinet Cartpole

On CUDA each is at least one kernel, and inside the step's CUDA graph each still costs the GPU about 2 us however
small its tensors (bench/results/2026-11-26-where-the-epoch-goes-H100.md): at 4096 envs that fixed cost, not the
arithmetic, is most of the task math's time. The count does not depend on the device or on num_envs, so it is taken
on the CPU, where nothing runs as a CUDA graph (a graph's replay passes no operation by the dispatcher that counts
them), and shows what fusing would remove. The physics (MuJoCo Warp's kernels) is not counted; a task's own Warp
kernels (Ant's and Humanoid's observations and reward) and the PPO loss's (harness.rl.ppo_loss) are. Writes the table
as JSON under --out.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # checkpoint_cost's trained agent (bench/ is not a package)

# Operations that return a view of their input: no kernel.
VIEWS = frozenset(
    {"alias", "as_strided", "detach", "expand", "permute", "select", "slice", "split", "squeeze", "t"}
    | {"transpose", "unbind", "unsqueeze", "view", "_unsafe_view"}
)


def count_operations(fn) -> collections.Counter:
    """The torch operations `fn()` runs that are not views, by name, and the tasks' own Warp kernels
    (MjWarpSim.launch: one kernel each), as `warp:<kernel>`."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from harness.sim.mjwarp import MjWarpSim

    class Counting(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.counts = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if name not in VIEWS:
                self.counts[name] += 1
            return func(*args, **(kwargs or {}))

    from harness import graphs

    launch, agent_launch = MjWarpSim.launch, graphs.warp_launch

    def counted_launch(sim, kernel, dim, inputs):
        counting.counts[f"warp:{kernel.key}"] += 1
        launch(sim, kernel, dim, inputs)

    def counted_agent_launch(kernel, dim, inputs):
        counting.counts[f"warp:{kernel.key}"] += 1
        agent_launch(kernel, dim, inputs)

    MjWarpSim.launch, graphs.warp_launch = counted_launch, counted_agent_launch
    try:
        with Counting() as counting:
            fn()
    finally:
        MjWarpSim.launch, graphs.warp_launch = launch, agent_launch
    return counting.counts


def count_task(task_name: str, num_envs: int) -> dict:
    """Operations in one whole env step of a task under way, and in each of its parts."""
    import torch
    from omegaconf import OmegaConf

    from harness.config import compose_config
    from harness.tasks import make_task

    cfg = compose_config([f"task={task_name}", f"num_envs={num_envs}", "sim_device=cpu", "rl_device=cpu"])
    task = make_task(OmegaConf.to_container(cfg.task, resolve=True), "cpu", "cpu")
    task.reset()
    actions = torch.rand(num_envs, task.num_actions) * 2 - 1
    for _ in range(3):  # under way: contacts, potentials, episode buffers set
        task.step(actions)
    parts = {
        "observations": task.compute_observations,
        "reward": task.compute_reward,
        "resets": lambda: task.reset_envs(task.reset_buf),
    }
    step = count_operations(lambda: task.step(actions))
    row = {"task": task_name, "step": sum(step.values()), "heaviest": step.most_common(5)}
    # (VecTask._advance observes twice a step: before the reward and again after the resets)
    row.update({part: sum(count_operations(fn).values()) for part, fn in parts.items()})
    return row


def count_training(task_name: str, num_envs: int) -> dict:
    """Operations of one training epoch (train.py's agent, the task's own PPO settings): the rollout beyond the env
    steps (action sampling, storage, episode bookkeeping), per step; and the update (returns, advantages, every
    minibatch's forward, backward and Adam step), per minibatch step. On CUDA with mixed precision the update runs a
    few more (the gradient scaler's)."""
    import torch
    from checkpoint_cost import trained_agent

    # after one epoch: its one-time work done
    agent = trained_agent(argparse.Namespace(task=task_name, num_envs=num_envs, device="cpu", epochs=1))
    agent.set_eval()
    with torch.no_grad():
        rollout = sum(count_operations(agent.play_steps).values())
    epoch = sum(count_operations(agent.train_epoch).values())
    minibatch_steps = agent.mini_epochs_num * len(agent.dataset)
    return {"rollout": rollout, "epoch": epoch, "horizon": agent.horizon_length, "minibatch_steps": minibatch_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", nargs="+", default=["Ant", "Humanoid", "Anymal", "FrankaCabinet", "Cartpole"])
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    rows = [count_task(name, args.num_envs) for name in args.task]
    for row in rows:
        training = count_training(row["task"], args.num_envs)
        row["rollout_beyond_env_per_step"] = training["rollout"] / training["horizon"] - row["step"]
        # the update: the epoch less its rollout, per minibatch step (the epoch's own work, returns, advantages and
        # the dataset, spread over the minibatch steps that this num_envs makes)
        row["update_per_minibatch_step"] = (training["epoch"] - training["rollout"]) / training["minibatch_steps"]
    print_table(rows)
    when = datetime.now(timezone.utc)
    record = {"date": when.isoformat(timespec="seconds"), "device": "cpu", "rows": rows}
    record["command"] = "python bench/kernel_count.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{when:%Y-%m-%dT%H%M}-kernel-count.json").write_text(json.dumps(record, indent=2) + "\n")


def print_table(rows: list[dict]) -> None:
    header = ["task", "env step", "observations", "reward", "resets", "rollout, rest", "update, per minibatch"]
    print(" | ".join(f"{name:>12}" for name in header) + " | heaviest in the env step")
    for r in rows:
        cells = [r["task"], r["step"], f"{r['observations']} (x2)", r["reward"], r["resets"]]
        cells += [f"{r['rollout_beyond_env_per_step']:.0f}", f"{r['update_per_minibatch_step']:.0f}"]
        heaviest = ", ".join(f"{name} {n}" for name, n in r["heaviest"])
        print(" | ".join(f"{cell:>12}" for cell in cells) + f" | {heaviest}")


if __name__ == "__main__":
    main()
