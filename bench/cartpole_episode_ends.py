"""How Cartpole's episodes end while it trains, every 5 epochs: the cart past resetDist, the pole past pi/2, or the
time limit; with --stock, trained by rl_games' own A2CAgent (its loop, rollout and update) instead of the harness's.

    python bench/cartpole_episode_ends.py [--stock] task=Cartpole sim_device=cpu rl_device=cpu seed=7

A diagnostic (bench/results/2026-11-26-Cartpole-seeds.md): the rest of the arguments go to train.py as they are.
"""

from __future__ import annotations

import math
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from harness.rl import trainer, update  # noqa: E402
from harness.rl.seam import A2CAgent  # noqa: E402
from harness.tasks.cartpole import Cartpole  # noqa: E402

ENDS = torch.zeros(3, dtype=torch.long)  # cart out, pole fell, time-out


def count_ends(compute_reward):
    def counted(self):
        failed = compute_reward(self)
        cart_out = self.sim.qpos[:, 0].abs() > self.reset_dist
        pole_fell = self.sim.qpos[:, 1].abs() > math.pi / 2
        timed_out = self.progress_buf >= self.max_episode_length - 1
        ENDS.add_(torch.stack([(cart_out & ~pole_fell).sum(), pole_fell.sum(), (timed_out & ~failed).sum()]).cpu())
        return failed

    return counted


def report_every_5_epochs(train_epoch):
    epochs = [0]

    def reported(self):
        results = train_epoch(self)
        epochs[0] += 1
        if epochs[0] % 5 == 0:
            cart, pole, time = ENDS.tolist()
            span = f"{epochs[0] - 4}-{epochs[0]}"
            print(f"  epochs {span}: cart out {cart}, pole fell {pole}, time-out {time}", flush=True)
            ENDS.zero_()
        return results

    return reported


if __name__ == "__main__":
    stock = "--stock" in sys.argv
    Cartpole.compute_reward = count_ends(Cartpole.compute_reward)
    if stock:
        A2CAgent.train_epoch = report_every_5_epochs(A2CAgent.train_epoch)
        trainer.HarnessAgent = A2CAgent  # what build_trainer registers as the continuous PPO
    else:
        update.SyncFreeUpdate.train_epoch = report_every_5_epochs(update.SyncFreeUpdate.train_epoch)
    sys.argv = [str(ROOT / "train.py"), *(arg for arg in sys.argv[1:] if arg != "--stock")]
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
