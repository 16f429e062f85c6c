"""The epoch loop of rl_games' continuous PPO, owned here so that it serves one process and several alike."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import torch

from harness import distributed
from harness.errors import UserError
from harness.rl import resume_state
from harness.rl.seam import torch_ext


class TrainingStopped(Exception):
    """Training ended early on a signal, after saving a checkpoint."""

    def __init__(self, signum: int, path: Path | None) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum, self.path = signum, path


class TrainLoop:
    """Replaces rl_games' `ContinuousA2CBase.train`; mix in before rl_games' agent class.

    The same epochs, TensorBoard scalars, checkpoint names and stopping rules as rl_games, with these
    differences: ranks come from this project's process group and NCCL communicator (harness.distributed)
    rather than rl_games' own NCCL group, and start from rank 0's weights broadcast as tensors; every rank
    counts the frames of all ranks; rank 0 decides once an epoch whether to stop (the run's end, a signal,
    or weights gone non-finite, which are never saved) and every rank follows; the best reward a resumed run
    had reached is kept, not forgotten.
    """

    stop_signal: int | None = None  # set by the signal handler; acted on at the end of the epoch
    saved_episodes: dict = {}  # what restore() read from the checkpoint; never mutated, only replaced

    def train(self):
        try:
            return self._train_epochs()
        finally:
            self.release_graphs()

    def _train_epochs(self):
        self.init_tensors()
        if not self._continue_saved_episodes():
            self.obs = self.env_reset()
        self.curr_frames = self.batch_size_envs
        if self.multi_gpu:
            distributed.broadcast_(self.model)
        total_time = 0.0
        while True:
            epoch = self.update_epoch()
            results = self.train_epoch()
            total_time += results[3]
            self.dataset.update_values_dict(None)  # frees the epoch's batch before the next rollout
            frame = self.frame // self.num_agents  # rl_games logs the epoch at the frame count it started from
            self.frame += self.curr_frames * self.world_size
            finished = diverged = False
            if self.global_rank == 0:  # every rank holds the same weights; rank 0 looks, logs and saves
                diverged = not self._weights_finite()
                finished = not diverged and self._log_and_save(epoch, frame, total_time, results)
            agreed = distributed.agree(int(finished), self.stop_signal or 0, int(diverged))
            finished, signum, diverged = agreed
            if diverged:
                raise UserError(
                    f"training diverged in epoch {epoch}: the network's weights are no longer finite, and nothing of "
                    "it was saved; lower train.params.config.learning_rate (a resume starts from the last checkpoint)"
                )
            if signum:
                raise TrainingStopped(signum, self._save_now() if self.global_rank == 0 else None)
            if finished:
                return self.last_mean_rewards, epoch

    def _continue_saved_episodes(self) -> bool:
        """After a resume, continue the checkpoint's episodes (worlds, running returns, RNGs) rather than reset
        every world at once. With several ranks only rank 0's worlds are in the checkpoint: the others start anew."""
        saved, self.saved_episodes = self.saved_episodes, {}
        if not saved or self.global_rank != 0:
            return False
        if resume_state.restore(self, saved):
            return True
        if saved.get("env"):
            print(
                f"The checkpoint's episodes are of {saved['env'].get('num_envs')} envs, this run has "
                f"{self.vec_env.env.num_envs}: every world starts a new episode"
            )
        return False

    def _weights_finite(self) -> bool:
        """One host sync: whether every weight is finite (a non-finite network is never saved)."""
        norms = torch.stack([p.detach().abs().sum() for p in self.model.parameters()])
        return bool(torch.isfinite(norms).all())

    def _log_and_save(self, epoch: int, frame: int, total_time: float, results: tuple) -> bool:
        """Rank 0's end of an epoch, as rl_games': TensorBoard, checkpoints; whether the run has finished."""
        step_time, play_time, update_time, sum_time, a_losses, c_losses, b_losses, entropies, kls, lr, lr_mul = results
        curr_frames = self.curr_frames * self.world_size
        scaled_time, scaled_play_time = self.num_agents * sum_time, self.num_agents * play_time
        self.diagnostics.epoch(self, current_epoch=epoch)
        self.write_stats(  # rl_games' scalars; its observers' after_print_stats (the progress line) too
            total_time, epoch, step_time, play_time, update_time, a_losses, c_losses, entropies, kls, lr, lr_mul,
            frame, scaled_time, scaled_play_time, curr_frames,
        )  # fmt: skip
        if b_losses:
            self.writer.add_scalar("losses/bounds_loss", torch_ext.mean_list(b_losses).item(), frame)
        won = self.game_rewards.current_size > 0 and self._log_rewards_and_save_best(epoch, frame, total_time)
        ended = (self.max_epochs != -1 and epoch >= self.max_epochs) or (
            self.max_frames != -1 and self.frame >= self.max_frames
        )
        # Every save_frequency epochs from the first on, whether or not an episode has ended yet (unlike rl_games,
        # whose periodic saves wait for one); and at the end of the run.
        if ended or (self.save_freq > 0 and epoch % self.save_freq == 0):
            self._save_periodic(epoch)
        return won or ended

    def _log_rewards_and_save_best(self, epoch: int, frame: int, total_time: float) -> bool:
        """TensorBoard's reward curves; the best checkpoint; whether the reward passed score_to_win."""
        rewards, shaped = self.game_rewards.get_mean(), self.game_shaped_rewards.get_mean()
        lengths = self.game_lengths.get_mean()
        self.mean_rewards = rewards[0]
        for i in range(self.value_size):
            name = "rewards" if i == 0 else f"rewards{i}"
            for axis, x in (("step", frame), ("iter", epoch), ("time", total_time)):
                self.writer.add_scalar(f"{name}/{axis}", rewards[i], x)
                self.writer.add_scalar(f"shaped_{name}/{axis}", shaped[i], x)
        for axis, x in (("step", frame), ("iter", epoch), ("time", total_time)):
            self.writer.add_scalar(f"episode_lengths/{axis}", lengths, x)
        if rewards[0] > self.last_mean_rewards and epoch >= self.save_best_after:
            self.last_mean_rewards = rewards[0]
            self.save(os.path.join(self.nn_dir, self.config["name"]))
            if self.last_mean_rewards > self.config.get("score_to_win", math.inf):
                print(f"Mean reward {self.last_mean_rewards:.2f} is above score_to_win: training ends")
                return True
        return False

    def _save_periodic(self, epoch: int) -> Path:
        """last_<name>_ep_<N>_rew_<R>.pth, R the mean reward now (-inf before any episode has ended)."""
        reward = self.game_rewards.get_mean()[0] if self.game_rewards.current_size > 0 else -math.inf
        return self.save(os.path.join(self.nn_dir, f"last_{self.config['name']}_ep_{epoch}_rew_{reward}"))

    def _save_now(self) -> Path:
        if self.writer is not None:
            self.writer.flush()
        return self._save_periodic(self.epoch_num)
