"""One rank of a multi-process PPO update, for tests/test_multi_gpu.py: started by torchrun, it builds train.py's
agent with multi_gpu=True, takes rank 0's weights as train() does, trains `--epochs` epochs and writes its
model's state to OUT/<seeds><R>.pt; rank 0 also saves a checkpoint as training does (OUT/checkpoint_<seeds>.pth).

    torchrun --standalone --nproc_per_node=2 tests/ranks.py OUT [--seeds same different] [--cuda] [--epochs N]

Seeds differ per rank (`different`, the default) or not (`same`); with both, one agent after the other in one
launch. With --cuda the ranks run on their GPUs with the captured update and
also write how far one replayed minibatch step lands from the same step run eagerly (OUT/graph_vs_eager<R>.pt)
and which all-reduce averaged them (OUT/all_reduce<R>.txt).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import CPU, make_agent  # noqa: E402

from harness import distributed, graphs  # noqa: E402
from harness.resolvers import register_resolvers  # noqa: E402

# Ant on 8 worlds, episodes of 9 steps, 4 minibatches x 4 mini-epochs an epoch (as tests/test_update.py).
SMALL_ANT = ("task=Ant", "num_envs=8", "task.env.episodeLength=10", "train.params.config.minibatch_size=32")
# Each rank's torch seed: the same on every rank (same data, so the average is the one process's update), or not.
SEEDS = {"same": lambda rank: 5, "different": lambda rank: 5 + rank}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", nargs="+", choices=SEEDS, default=["different"])
    parser.add_argument("--cuda", action="store_true")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    register_resolvers()
    os.chdir(args.out)
    rank = int(os.environ["RANK"])
    devices = () if args.cuda else CPU
    for seeds in args.seeds:  # one launch, one process group, an agent for each
        agent = make_agent(*SMALL_ANT, *devices, "multi_gpu=True", seed=SEEDS[seeds](rank))
        distributed.broadcast_(agent.model)
        for _ in range(args.epochs):
            agent.epoch_num += 1
            agent.train_epoch()
        torch.save({k: v.cpu() for k, v in agent.model.state_dict().items()}, args.out / f"{seeds}{rank}.pt")
        if rank == 0:
            agent.save(str(args.out / f"checkpoint_{seeds}"))
        if args.cuda:
            torch.save(update_graph_vs_eager(agent), args.out / f"graph_vs_eager{rank}.pt")
            (args.out / f"all_reduce{rank}.txt").write_text(type(distributed._gpus.comm).__name__)
        agent.release_graphs()  # as training does, before the process group goes
    distributed.close_process_group()


def update_graph_vs_eager(agent) -> float:
    """Largest weight difference between one minibatch step run eagerly and replayed from the update's graph
    (gradient and KL all-reduce inside), from the same weights, optimizer, scaler, normalizers and rate."""
    assert agent._update_graph is not None, "the multi-GPU update was not captured"
    minibatch = agent.dataset[0]
    graphs.keep_buffers_in_place(agent.model)
    params = list(agent.model.parameters())
    optimizer_state = [t for state in agent.optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    scaler_state = [getattr(agent.scaler, n) for n in ("_scale", "_growth_tracker") if hasattr(agent.scaler, n)]
    state = params + list(agent.model.buffers()) + optimizer_state + scaler_state + [agent._lr]
    saved = [t.clone() for t in state]
    agent.set_train()
    agent._minibatch_step(minibatch)
    graphs.keep_buffers_in_place(agent.model)
    eager = [p.detach().clone() for p in params]
    for tensor, value in zip(state, saved, strict=True):
        tensor.data.copy_(value)
    agent._train_minibatch(minibatch)
    return max((p.detach() - e).abs().max().item() for p, e in zip(params, eager, strict=True))


if __name__ == "__main__":
    main()
