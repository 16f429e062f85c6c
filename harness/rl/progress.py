"""A progress line a person can read at every epoch: epoch N/M, env steps/s, mean reward, time left."""

from __future__ import annotations

import math
import time
from datetime import timedelta

import torch

from harness.rl.host_copy import HostCopy
from harness.rl.seam import AlgoObserver


class ProgressObserver(AlgoObserver):
    """Prints one line per epoch (rank 0) and logs env steps/s to TensorBoard."""

    def __init__(self) -> None:
        super().__init__()
        self.steps_per_s: list[float] = []  # one figure per epoch, read by bench/ and by a failed start's clean-up
        # The best mean reward shown on any epoch's line: what a sweep compares, also for a run too short to save a
        # best checkpoint (rl_games records its best only from save_best_after on).
        self.best_mean_reward = -math.inf

    def after_init(self, algo) -> None:
        self.algo = algo
        self.start_time = self.last_time = time.perf_counter()
        self.start_epoch: int | None = None  # the epoch before this session's first (a resume starts late)
        self.nonfinite_resets = torch.zeros((), dtype=torch.long, device=algo.ppo_device)
        self._nonfinite_copy = HostCopy(self.nonfinite_resets)

    def process_infos(self, infos: dict, done_indices) -> None:
        if "nonfinite_resets" in infos:  # a device scalar: summed without a host sync
            self.nonfinite_resets += infos["nonfinite_resets"].to(self.nonfinite_resets.device)

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        # Called once an epoch, so the time since the last call is an epoch's; every epoch plays the same number of env
        # steps on every rank. This project's loop reports an epoch late and says when it ended (harness.rl.train_loop).
        now = getattr(self.algo, "reported_epoch_end", None) or time.perf_counter()
        if self.start_epoch is None:
            self.start_epoch = epoch_num - 1
        steps_per_s = self.algo.curr_frames * self.algo.world_size / max(now - self.last_time, 1e-9)
        self.last_time = now
        self.steps_per_s.append(steps_per_s)
        nonfinite = self._nonfinite_before()
        self.algo.writer.add_scalar("performance/env_steps_per_s", steps_per_s, frame)
        # Seconds since the agent was built (kernels already compiled), finer than rl_games' whole-second rewards/time.
        self.algo.writer.add_scalar("performance/elapsed_s", now - self.start_time, frame)
        self.algo.writer.add_scalar("env/nonfinite_resets", nonfinite, frame)
        if self.algo.game_rewards.current_size > 0:
            self.best_mean_reward = max(self.best_mean_reward, float(self.algo.game_rewards.get_mean()[0]))
        line = self.format_line(epoch_num, steps_per_s, now - self.start_time)
        print(line + (f" | {nonfinite} non-finite worlds reset" if nonfinite else ""), flush=True)

    def _nonfinite_before(self) -> int:
        """The worlds reset for non-finite physics up to the epoch before this one: read without waiting for the
        device (the count up to now is still being copied, for the next epoch's line)."""
        count = int(self._nonfinite_copy.get()[0])
        self._nonfinite_copy = HostCopy(self.nonfinite_resets)
        return count

    def format_line(self, epoch: int, steps_per_s: float, elapsed: float) -> str:
        max_epochs = self.algo.max_epochs
        rewards = self.algo.game_rewards
        reward = f"{rewards.get_mean()[0]:10.2f}" if rewards.current_size > 0 else f"{'-':>10}"
        lengths = self.algo.game_lengths
        length = f"{lengths.get_mean().item():6.0f}" if lengths.current_size > 0 else f"{'-':>6}"
        done = epoch - self.start_epoch
        left = elapsed / done * (max_epochs - epoch) if max_epochs > 0 and done > 0 else None
        return (
            f"epoch {epoch:>{len(str(max_epochs))}}/{max_epochs}"
            f" | {steps_per_s:>11,.0f} steps/s"
            f" | reward {reward} | ep len {length}"
            f" | {_clock(elapsed)} elapsed" + (f", {_clock(left)} left" if left is not None else "")
        )


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
