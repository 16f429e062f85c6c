"""How many torch operations that do work (views left out) one env step runs, by part of the step.

    python bench/kernel_count.py --task Ant Humanoid Anymal FrankaCabinet Cartpole [--device cpu]

On CUDA each is at least one kernel, and inside the step's CUDA graph each still costs the GPU about 2 us however
small its tensors (bench/results/2026-11-26-where-the-epoch-goes-H100.md): at 4096 envs that fixed cost, not the
arithmetic, is most of the task math's time. The count does not depend on the device or on num_envs, so this runs
anywhere (the CPU by default) and shows what fusing the task math would remove. The physics (MuJoCo Warp's
kernels) is not counted. Writes the table as JSON under --out.
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

# Operations that return a view of their input: no kernel.
VIEWS = frozenset(
    {"alias", "as_strided", "detach", "expand", "permute", "select", "slice", "split", "squeeze", "t"}
    | {"transpose", "unbind", "unsqueeze", "view", "_unsafe_view"}
)


def count_operations(fn) -> collections.Counter:
    """The torch operations `fn()` runs that are not views, by name."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counting(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.counts = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if name not in VIEWS:
                self.counts[name] += 1
            return func(*args, **(kwargs or {}))

    with Counting() as counting:
        fn()
    return counting.counts


def count_task(task_name: str, num_envs: int, device: str) -> dict:
    """Operations in one whole env step of a task under way, and in each of its parts."""
    import torch
    from omegaconf import OmegaConf

    from harness.config import compose_config
    from harness.tasks import make_task

    cfg = compose_config([f"task={task_name}", f"num_envs={num_envs}", f"sim_device={device}", f"rl_device={device}"])
    task = make_task(OmegaConf.to_container(cfg.task, resolve=True), device, device)
    task.set_step_mode(graph=False)  # eager: the dispatcher sees each operation (a graph replays them all alike)
    task.reset()
    actions = torch.rand(num_envs, task.num_actions, device=device) * 2 - 1
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", nargs="+", default=["Ant", "Humanoid", "Anymal", "FrankaCabinet", "Cartpole"])
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    rows = [count_task(name, args.num_envs, args.device) for name in args.task]
    print(f"{'task':>14} | {'env step':>8} | {'observations':>12} | {'reward':>6} | {'resets':>6} | heaviest")
    for r in rows:
        heaviest = ", ".join(f"{name} {n}" for name, n in r["heaviest"])
        cells = f"{r['step']:>8} | {r['observations']:>7} (x2) | {r['reward']:>6} | {r['resets']:>6}"
        print(f"{r['task']:>14} | {cells} | {heaviest}")
    when = datetime.now(timezone.utc)
    record = {"date": when.isoformat(timespec="seconds"), "device": args.device, "rows": rows}
    record["command"] = "python bench/kernel_count.py " + " ".join(sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{when:%Y-%m-%dT%H%M}-kernel-count.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
