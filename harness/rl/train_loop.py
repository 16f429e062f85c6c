"""The epoch loop of rl_games' continuous PPO, owned here so that it serves one process and several alike."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

from harness import distributed
from harness.errors import UserError
from harness.rl import resume_state
from harness.rl.update import QueuedEpoch, all_weights_finite


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

    The end of an epoch waits for the device only as long as the episodes its rollout finished take to arrive:
    rank 0 counts them into rl_games' meters and decides (a best or periodic checkpoint, the run's end) while the
    update still runs, and starts the next rollout. What it reports of an epoch (TensorBoard, the observers'
    after_print_stats: the progress line) it reports once the next epoch is queued, while the GPU runs that epoch's
    rollout, so that this host work never leaves the GPU idle; the update's statistics (losses, KL divergence,
    learning rate, whether the weights are finite) have arrived by then. The last epoch is reported when the run
    stops. Only a checkpoint waits for the update, to make sure the weights it saves are finite.
    (On an H100 the update's wait took about 4 ms of a 42 ms Ant epoch,
    bench/results/2026-11-27-sync-free-epoch-end-H100.md; reporting after the rollout's wait left the GPU idle
    0.1-3.2 ms an epoch, bench/results/2026-11-27-fused-ppo-loss-H100x2.md.)
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
        reported_late = None  # the epoch before, reported once this one is queued
        while True:
            epoch = self.update_epoch()
            queued = self.queue_epoch()  # (the device may still be running its rollout when this returns)
            total_time += queued.times[3]
            self.dataset.update_values_dict(None)  # frees the epoch's batch before the next rollout
            frame = self.frame // self.num_agents  # rl_games logs the epoch at the frame count it started from
            self.frame += self.curr_frames * self.world_size
            finished, diverged = False, 0  # (diverged: the epoch whose weights were found non-finite)
            if self.global_rank == 0 and reported_late:  # every rank holds the same weights; rank 0 logs and saves
                diverged = self._report(*reported_late)
            self.record_finished_episodes()  # waits for this epoch's rollout, not for its update
            rollout_done = time.perf_counter()  # this epoch's end for the progress line: its episodes are counted
            if self.global_rank == 0 and not diverged:
                finished, diverged = self._decide_and_save(epoch)
            reported_late = (queued, epoch, frame, total_time, rollout_done)
            finished, signum, diverged = distributed.agree(int(finished), self.stop_signal or 0, diverged)
            if self.global_rank == 0 and not diverged and (finished or signum):
                diverged = self._report(*reported_late)  # the last epoch's, waiting for its statistics
            if diverged:
                raise UserError(
                    f"training diverged in epoch {diverged}: the network's weights are no longer finite, and nothing "
                    "of it was saved; lower train.params.config.learning_rate (a resume starts from the last "
                    "checkpoint)"
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
        return bool(all_weights_finite(self.model))

    def _report(self, queued: QueuedEpoch, epoch: int, frame: int, total_time: float, rollout_done: float) -> int:
        """Rank 0's record of an epoch, as rl_games' (TensorBoard, the observers' after_print_stats), made once the next
        epoch is queued and before its episodes are counted; `epoch` if its weights were no longer finite, else 0.
        The observers time the epoch to `rollout_done` (`reported_epoch_end`), not to the report: on the CPU the next
        epoch has run by then, and the last epoch is reported straight after the one before."""
        self.reported_epoch_end = rollout_done
        diverged = self._log_statistics(queued, epoch, frame)
        step_time, play_time, update_time, sum_time = queued.times
        curr_frames = self.curr_frames * self.world_size
        self.diagnostics.epoch(self, current_epoch=epoch)
        self.diagnostics.send_info(self.writer)
        for name, value in (
            ("performance/step_inference_rl_update_fps", curr_frames / (self.num_agents * sum_time)),
            ("performance/step_inference_fps", curr_frames / (self.num_agents * play_time)),
            ("performance/step_fps", curr_frames / step_time),
            ("performance/rl_update_time", update_time),
            ("performance/step_inference_time", play_time),
            ("performance/step_time", step_time),
            ("info/lr_mul", 1.0),
            ("info/e_clip", self.e_clip),
            ("info/epochs", epoch),
        ):
            self.writer.add_scalar(name, value, frame)
        self.algo_observer.after_print_stats(frame, epoch, total_time)  # the progress line, among others
        if self.game_rewards.current_size > 0:
            self._log_rewards(epoch, frame, total_time)
        return diverged

    def _decide_and_save(self, epoch: int) -> tuple[bool, int]:
        """Rank 0's decisions at the end of an epoch, once its episodes are counted and while its update may still be
        running (a best or periodic checkpoint waits for it); whether the run has finished, and `epoch` if its
        weights are no longer finite (else 0)."""
        best = self.game_rewards.current_size > 0 and self._best_yet(epoch)
        ended = (self.max_epochs != -1 and epoch >= self.max_epochs) or (
            self.max_frames != -1 and self.frame >= self.max_frames
        )
        # Every save_frequency epochs from the first on, whether or not an episode has ended yet (unlike rl_games,
        # whose periodic saves wait for one); and at the end of the run.
        periodic = ended or (self.save_freq > 0 and epoch % self.save_freq == 0)
        if (best or periodic) and not self._weights_finite():
            return False, epoch
        won = best and self._save_best()
        if periodic:
            self._save_periodic(epoch)
        return won or ended, 0

    def _log_statistics(self, queued: QueuedEpoch, epoch: int, frame: int) -> int:
        """An epoch's losses, KL divergence and learning rate to TensorBoard, as rl_games logs them; `epoch` if its
        weights are no longer finite, else 0. Waits for their copy to the host, which the next epoch finds done."""
        stats = queued.read()
        self.last_lr = stats.lr
        self.writer.add_scalar("losses/a_loss", stats.actor_loss, frame)
        self.writer.add_scalar("losses/c_loss", stats.critic_loss, frame)
        self.writer.add_scalar("losses/entropy", stats.entropy, frame)
        if self.bounds_loss_coef is not None:
            self.writer.add_scalar("losses/bounds_loss", stats.bounds_loss, frame)
        self.writer.add_scalar("info/last_lr", stats.last_used_lr, frame)
        self.writer.add_scalar("info/kl", stats.kl, frame)
        return 0 if stats.weights_finite else epoch

    def _best_yet(self, epoch: int) -> bool:
        """Whether the mean reward is the best yet (and a best checkpoint is due)."""
        self.mean_rewards = self.game_rewards.get_mean()[0]
        return self.mean_rewards > self.last_mean_rewards and epoch >= self.save_best_after

    def _log_rewards(self, epoch: int, frame: int, total_time: float) -> None:
        """TensorBoard's reward curves."""
        rewards, shaped = self.game_rewards.get_mean(), self.game_shaped_rewards.get_mean()
        lengths = self.game_lengths.get_mean()
        for i in range(self.value_size):
            name = "rewards" if i == 0 else f"rewards{i}"
            for axis, x in (("step", frame), ("iter", epoch), ("time", total_time)):
                self.writer.add_scalar(f"{name}/{axis}", rewards[i], x)
                self.writer.add_scalar(f"shaped_{name}/{axis}", shaped[i], x)
        for axis, x in (("step", frame), ("iter", epoch), ("time", total_time)):
            self.writer.add_scalar(f"episode_lengths/{axis}", lengths, x)

    def _save_best(self) -> bool:
        """<experiment>.pth with the new best mean reward; whether that reward passed score_to_win."""
        self.last_mean_rewards = self.mean_rewards
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
