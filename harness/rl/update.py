"""rl_games' PPO update without a host sync per minibatch; on CUDA each minibatch step replays a CUDA graph."""

from __future__ import annotations

import sys
import time
from typing import NamedTuple

import torch

from harness import distributed, graphs
from harness.rl.host_copy import HostCopy
from harness.rl.rollout import SyncFreeRollout
from harness.rl.seam import AdaptiveScheduler, DefaultDiagnostics, ModelA2CContinuousLogStd, torch_ext

# Minibatch steps run eagerly before the capture: they create the optimizer's and the scaler's state.
EAGER_MINIBATCHES = 2


class MinibatchStats(NamedTuple):
    """What one PPO minibatch step reports (0-d tensors on the device): rl_games' losses, and the rate it used."""

    actor_loss: torch.Tensor
    critic_loss: torch.Tensor
    entropy: torch.Tensor
    kl: torch.Tensor
    bounds_loss: torch.Tensor
    lr: torch.Tensor


def all_weights_finite(model: torch.nn.Module) -> torch.Tensor:
    """Whether every weight of `model` is finite (a non-finite network is never saved): a 0-d bool tensor on the
    model's device, which reading on the host waits for."""
    return torch.isfinite(torch.cat([p.detach().reshape(-1) for p in model.parameters()])).all()


class EpochStatistics(NamedTuple):
    """One epoch's statistics on the host (what rl_games logs, and whether its weights are still finite)."""

    actor_loss: float
    critic_loss: float
    bounds_loss: float
    entropy: float
    kl: float
    lr: float
    last_used_lr: float
    weights_finite: bool


class QueuedEpoch(NamedTuple):
    """An epoch whose work is queued on the device: its host-clock times, its statistics on their way, and rl_games'
    lists of losses (actor, critic, bounds, entropy: one per minibatch) and KL divergences, on the device."""

    times: tuple  # rl_games' step_time, play_time, update_time, total_time (seconds)
    statistics: HostCopy
    logged: tuple

    def read(self) -> EpochStatistics:
        """The statistics, waiting for their copy (not for what the device was given after the epoch)."""
        values = self.statistics.get()[0].tolist()
        return EpochStatistics(*values[:-1], weights_finite=bool(values[-1]))

    def results(self) -> tuple:
        """rl_games' train_epoch results (its ContinuousA2CBase's), once the statistics have arrived."""
        return (*self.times, *self.logged, self.read().last_used_lr, 1.0)


class SyncFreeUpdate:
    """Replaces `ContinuousA2CBase.train_epoch` for feed-forward policies; mix in before rl_games' agent class.

    rl_games reads the KL divergence to the host after every minibatch (`kl.item()`) to adapt the learning
    rate, so Python waits for the GPU up to thirty-two times an epoch and then launches each minibatch's
    few hundred small kernels while the GPU idles. Here the learning rate is a tensor on the device that
    the fused Adam reads and the adaptive schedule updates in place. On CUDA each minibatch step (rl_games'
    own forward, losses, backward, scaler and Adam step, then the schedule) is captured as one CUDA graph
    after two eager steps and replayed with the next minibatch copied into its inputs. Minibatches, losses,
    the order of updates and what is logged are rl_games'. The epoch's statistics (losses, KL divergence, learning
    rate) reach the host in one copy that nothing waits for (`queue_epoch`); `train_epoch` waits for it.
    """

    _update_graph: torch.cuda.CUDAGraph | None = None
    _eager_minibatches = 0

    def __init__(self, base_name, params) -> None:
        super().__init__(base_name, params)
        self._install_lr_tensor(self.last_lr)

    def train_epoch(self):
        """rl_games' train_epoch: one epoch, waiting for its statistics."""
        epoch = self.queue_epoch()
        self.record_finished_episodes()
        self.last_lr = epoch.read().lr
        return epoch.results()

    def queue_epoch(self) -> QueuedEpoch:
        """One epoch's rollout and update, queued on the device without waiting for either, its statistics on their
        way to the host (harness.rl.train_loop reads them an epoch later, when they have long arrived). The episodes
        the rollout finished are counted into rl_games' meters by the caller (`record_finished_episodes`)."""
        if self.is_rnn or self.has_central_value:
            results = super().train_epoch()
            statistics = self._epoch_statistics(results[4:8], results[8], results[9:10] * 2)
            return QueuedEpoch(results[:4], statistics, results[4:9])
        self.vec_env.set_train_info(self.frame, self)
        self.defer_episode_statistics = isinstance(self, SyncFreeRollout)
        self.set_eval()
        play_start = time.perf_counter()
        with torch.no_grad():
            batch_dict = self.play_steps()
        update_start = time.perf_counter()
        self.set_train()
        self.curr_frames = batch_dict.pop("played_frames")
        self.prepare_dataset(batch_dict)
        self.algo_observer.after_steps()
        stats, kls = [], []
        for mini_epoch in range(self.mini_epochs_num):
            kls.append(self._train_mini_epoch(stats))
            self.diagnostics.mini_epoch(self, mini_epoch)
            if self.normalize_input:
                self.model.running_mean_std.eval()
        if self.multi_gpu:  # every rank acts, and rank 0 saves, on the statistics of all ranks' data
            distributed.average_normalizers_(self.model)
        b_losses = [s.bounds_loss for s in stats] if self.bounds_loss_coef is not None else []
        losses = ([s.actor_loss for s in stats], [s.critic_loss for s in stats], b_losses, [s.entropy for s in stats])
        # the rate the update ends with, and the one its last minibatch used (what rl_games logs as info/last_lr)
        statistics = self._epoch_statistics(losses, kls, (self._lr, stats[-1].lr))
        update_end = time.perf_counter()  # the host's time: the update's GPU work may still be under way
        times = (batch_dict["step_time"], update_start - play_start, update_end - update_start, update_end - play_start)
        return QueuedEpoch(times, statistics, (*losses, kls))

    def _epoch_statistics(self, losses: tuple, kls: list, lrs: tuple) -> HostCopy:
        """The epoch's mean losses (actor, critic, bounds, entropy) and KL divergence, its learning rates (at the end,
        and the last minibatch's), and whether every weight is still finite (a non-finite network is never saved),
        on their way to the host in one copy."""
        device = next(self.model.parameters()).device
        scalars = [  # (a list is empty where no bounds loss is configured)
            torch_ext.mean_list(values) if values else torch.zeros((), device=device) for values in (*losses, kls)
        ]
        scalars += [torch.as_tensor(lr, device=device) for lr in lrs]  # (device tensors here but for RNNs)
        scalars.append(all_weights_finite(self.model))
        return HostCopy(torch.stack([x.detach().float().reshape(()) for x in scalars]))

    def _train_mini_epoch(self, stats: list) -> torch.Tensor:
        """One pass over the dataset's minibatches, each one's stats appended to `stats`; returns the pass's mean KL
        (averaged over ranks), to which the standard schedule has adapted the learning rate."""
        kls = []
        for i in range(len(self.dataset)):
            stats.append(self._train_minibatch(self.dataset[i]))
            kls.append(stats[-1].kl)
            if self.schedule_type == "legacy" and not self._adaptive_lr():
                self._host_schedule(stats[-1].kl)
        kl = torch_ext.mean_list(kls)
        if self.schedule_type == "standard":  # (legacy: each minibatch's KL was averaged over ranks already)
            distributed.average_(kl)
            if self._adaptive_lr():
                self._device_schedule(kl)
            else:
                self._host_schedule(kl)
        return kl

    def _train_minibatch(self, minibatch: dict) -> MinibatchStats:
        """One PPO step on a minibatch."""
        if self._use_graph(minibatch):
            for key, static in self._static_minibatch.items():
                static.copy_(minibatch[key])
            self._update_graph.replay()
            stats, mu, sigma = self._graph_outputs
        else:
            stats, mu, sigma = self._minibatch_step(minibatch)
            self._eager_minibatches += 1
        self.dataset.update_mu_sigma(mu, sigma)
        return MinibatchStats(*stats.clone().unbind())  # the graph's outputs are overwritten by its next replay

    def _minibatch_step(self, minibatch: dict):
        """rl_games' own minibatch step, then the legacy schedule's learning-rate update on the device."""
        lr_used = self._lr.clone()
        # rl_games' train_actor_critic without its last line, which writes self.last_lr into the optimizer
        self.set_train()
        self.calc_gradients(minibatch)
        a_loss, c_loss, entropy, kl, _, _, mu, sigma, b_loss = self.train_result
        if self.schedule_type == "legacy":
            distributed.average_(kl)  # every rank adapts its learning rate alike
            if self._adaptive_lr():
                self._device_schedule(kl)
        scalars = MinibatchStats(a_loss, c_loss, entropy, kl, b_loss, lr_used)
        return torch.stack([t.detach().float().reshape(()) for t in scalars]), mu, sigma

    def calc_gradients(self, input_dict: dict) -> None:
        """rl_games' calc_gradients (forward, losses, backward, optimizer step) with its loss terms and their backward
        pass as one kernel (harness.rl.ppo_loss) where its settings are the plain PPO ones; rl_games' own otherwise."""
        if not self._fuses_loss():
            return super().calc_gradients(input_dict)
        from harness.rl.ppo_loss import FusedPPOLoss  # (imports Warp, which Isaac Gym's path goes without)

        model = self.model
        with torch.amp.autocast("cuda", enabled=self.mixed_precision, dtype=torch.bfloat16):
            inputs = {"is_train": True, "prev_actions": input_dict["actions"]}
            inputs["obs"] = model.norm_obs(self._preproc_obs(input_dict["obs"]))
            mu, logstd, value, _ = model.a2c_network(inputs)
        coefs = (self.e_clip, self.critic_coef, self.entropy_coef, self.bounds_loss_coef)
        loss, means = FusedPPOLoss.apply(mu, logstd, value, input_dict, coefs, bool(self.clip_value))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.trancate_gradients_and_step()
        a_loss, c_loss, entropy, b_loss, kl = means.unbind()
        sigma = torch.exp(logstd.detach())
        self.train_result = (a_loss, c_loss, entropy, kl, self.last_lr, 1.0, mu.detach(), sigma, b_loss)
        return None

    def _fuses_loss(self) -> bool:
        """Whether the settings are those FusedPPOLoss computes: PPO's clipped surrogate, a value loss, rl_games'
        'bound' loss, a feed-forward Gaussian policy without auxiliary losses, no diagnostics; and whether Warp is
        loaded already (by MuJoCo Warp: Isaac Gym's path, for which it may not even be installed, stays rl_games')."""
        return (
            "warp" in sys.modules
            and self.ppo
            and self.has_value_loss
            and self.bound_loss_type == "bound"
            and self.bounds_loss_coef is not None
            and not self.is_rnn
            and isinstance(self.model, ModelA2CContinuousLogStd.Network)
            and self.model.get_aux_loss() is None
            and isinstance(self.diagnostics, DefaultDiagnostics)
        )

    def trancate_gradients_and_step(self) -> None:
        """rl_games' optimizer step (its method's name), with the gradients averaged over ranks in one flat
        all-reduce whose buffer the gradients then are (harness.distributed.average_gradients_)."""
        if self.multi_gpu:
            distributed.average_gradients_(self.model.parameters())
        if self.truncate_grads:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _adaptive_lr(self) -> bool:
        return isinstance(self.scheduler, AdaptiveScheduler)

    def _device_schedule(self, kl: torch.Tensor) -> None:
        """rl_games' AdaptiveScheduler on the device: divide the rate by 1.5 when the KL divergence is above
        twice its threshold, multiply it by 1.5 when below half, within [min_lr, max_lr]."""
        scheduler, lr = self.scheduler, self._lr
        lowered = torch.clamp(lr / 1.5, min=scheduler.min_lr)
        raised = torch.clamp(lr * 1.5, max=scheduler.max_lr)
        threshold = scheduler.kl_threshold
        lr.copy_(torch.where(kl > 2.0 * threshold, lowered, torch.where(kl < 0.5 * threshold, raised, lr)))

    def _host_schedule(self, kl: torch.Tensor) -> None:
        """Schedules that ignore the KL divergence (linear, identity) run on the host, as in rl_games."""
        self.last_lr, self.entropy_coef = self.scheduler.update(self.last_lr, self.entropy_coef, self.epoch_num, 0, kl)
        self._lr.fill_(self.last_lr)

    def _install_lr_tensor(self, lr: float) -> None:
        """Give the optimizer the learning rate as a device tensor, so that a graph can change it."""
        self.last_lr = float(lr)
        self._lr = torch.tensor(self.last_lr, device=self.ppo_device)
        for group in self.optimizer.param_groups:
            group["lr"], group["capturable"] = self._lr, self._lr.is_cuda

    def get_full_state_weights(self) -> dict:
        state = super().get_full_state_weights()
        for group in state["optimizer"]["param_groups"]:  # saved as rl_games saves them: a plain number
            group["lr"], group["capturable"] = float(group["lr"]), False
        return state

    def set_full_state_weights(self, weights: dict, set_epoch: bool = True) -> None:
        super().set_full_state_weights(weights, set_epoch=set_epoch)
        self._install_lr_tensor(self.optimizer.param_groups[0]["lr"])
        # The optimizer's state tensors were replaced: warm up and capture again.
        self._update_graph, self._eager_minibatches = None, 0

    def release_graphs(self) -> None:
        """Drop the update's CUDA graph, which training does when it ends: with several GPUs it holds NCCL's
        all-reduce, and NCCL cannot destroy its communicator (ncclCommDestroy waits forever) while a graph
        that captured one of its collectives exists."""
        self._update_graph = None

    # --- the CUDA graph ---------------------------------------------------------------------------------------

    def _use_graph(self, minibatch: dict) -> bool:
        """Whether this step replays the graph, capturing it first where due."""
        # rl_games' torch_compile makes graphs of its own: it stays eager. With several GPUs the gradients' and the
        # KL divergence's all-reduce (NCCL) are captured with the rest of the step.
        compiled = hasattr(self.model, "_orig_mod")
        if not (self._lr.is_cuda and not compiled):
            return False
        if self._eager_minibatches < EAGER_MINIBATCHES:
            return False
        # Python numbers that a graph bakes in: a schedule or a user that changes one gets a new graph.
        key = (self.entropy_coef, self.e_clip, self.critic_coef, self.bounds_loss_coef, self.schedule_type)
        if self._update_graph is None or key != self._graph_key:
            self._capture(minibatch)
            self._graph_key = key
        return True

    def _capture(self, minibatch: dict) -> None:
        self._update_graph = None
        self._static_minibatch = {key: value.clone() for key, value in minibatch.items()}
        graphs.keep_buffers_in_place(self.model)  # the eager steps replaced the input normalizer's statistics
        graph = torch.cuda.CUDAGraph()
        with graphs.capture(graph, self._lr.device):
            self._graph_outputs = self._minibatch_step(self._static_minibatch)
            graphs.keep_buffers_in_place(self.model)
        self._update_graph = graph
