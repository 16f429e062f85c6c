"""How far FrankaCabinet's drawer opens in each episode: of all episodes that end while play.py (or train.py) runs,
how many opened it at least 1, 10, 20, 30 and 39 cm (upstream's success) at some step, and the mean largest and
last opening.

    python bench/franka_cabinet_drawer.py play.py task=FrankaCabinet checkpoint=auto num_episodes=256

A diagnostic (bench/results/2026-11-26-FrankaCabinet-H100.md): play's report counts only the episodes that reached
0.39 m, which end early; this shows what the others did. The counting is tensor work inside the captured step.
"""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from harness.tasks.franka_cabinet import FrankaCabinet  # noqa: E402

THRESHOLDS = (0.01, 0.1, 0.2, 0.3, 0.39)  # m
TALLY = {}  # device tensors, made with the task


def tracked_init(init):
    def made(self, *args, **kwargs):
        init(self, *args, **kwargs)
        TALLY.update(
            peak=torch.zeros(self.num_envs, device=self.device),
            over=torch.zeros(len(THRESHOLDS), dtype=torch.long, device=self.device),
            ended=torch.zeros((), dtype=torch.long, device=self.device),
            peak_sum=torch.zeros((), dtype=torch.float64, device=self.device),
            last_sum=torch.zeros((), dtype=torch.float64, device=self.device),
            thresholds=torch.tensor(THRESHOLDS, device=self.device),
        )

    return made


def tracked_reward(compute_reward):
    def computed(self):
        torch.maximum(TALLY["peak"], self.sim.qpos[:, self.drawer_qpos], out=TALLY["peak"])
        return compute_reward(self)

    return computed


def tracked_reset(reset_envs):
    def reset(self, mask):
        ended = mask & (self.progress_buf > 0)  # not the first reset of all worlds
        peak = torch.where(ended, TALLY["peak"], 0.0)
        TALLY["over"].add_(((peak[:, None] >= TALLY["thresholds"]) & ended[:, None]).sum(0))
        TALLY["ended"].add_(ended.sum())
        TALLY["peak_sum"].add_(peak.sum())
        TALLY["last_sum"].add_(torch.where(ended, self.sim.qpos[:, self.drawer_qpos], 0.0).sum())
        TALLY["peak"].masked_fill_(mask, 0.0)
        reset_envs(self, mask)

    return reset


def report() -> None:
    if not TALLY:
        return
    ended = max(int(TALLY["ended"]), 1)
    print(f"FrankaCabinet drawer, {int(TALLY['ended'])} ended episodes:")
    counts = TALLY["over"].tolist()
    for i, threshold in enumerate(THRESHOLDS):
        print(f"  opened >= {threshold:.2f} m at some step: {counts[i]} ({100 * counts[i] / ended:.1f}%)")
    peak, last = float(TALLY["peak_sum"]) / ended, float(TALLY["last_sum"]) / ended
    print(f"  mean largest opening {peak:.3f} m, at the end {last:.3f} m")


if __name__ == "__main__":
    FrankaCabinet.__init__ = tracked_init(FrankaCabinet.__init__)
    FrankaCabinet.compute_reward = tracked_reward(FrankaCabinet.compute_reward)
    FrankaCabinet.reset_envs = tracked_reset(FrankaCabinet.reset_envs)
    atexit.register(report)
    script = str(ROOT / sys.argv[1])
    sys.argv = [script, *sys.argv[2:]]
    runpy.run_path(script, run_name="__main__")
