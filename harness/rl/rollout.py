"""rl_games' PPO rollout without a host sync at every env step, on CUDA replayed as one CUDA graph."""

from __future__ import annotations

import sys
import time
import types

import torch

from harness import graphs
from harness.rl.host_copy import HostCopy
from harness.rl.seam import ModelA2CContinuousLogStd, swap_and_flatten01


class SyncFreeRollout:
    """Replaces rl_games' `A2CBase.play_steps` for feed-forward policies; mix in before rl_games' agent class.

    rl_games looks up the finished episodes with `dones.nonzero()` after every env step, which makes the
    host wait for the GPU sixteen or thirty-two times an epoch, so Python never runs ahead of the GPU.
    Here each step's done mask and running returns are kept on the device, and rl_games' episode
    statistics are updated after the rollout, step by step in the same order, with one wait. Observers'
    `process_infos` get the step's done mask (a bool tensor on the device) instead of indices, right after the env
    step (before the step's rewards are added to the running returns, which rl_games does first).
    What the rollout stores for the update is rl_games' own.

    The action sampling is rl_games' (normalizer, network, Gaussian sample, value denormalizer) with the
    sample drawn without a host sync; on CUDA it is captured as a CUDA graph at its second call and
    replayed: dozens of small kernels at one launch. The graph reads the weights the optimizer updates in
    place, and the normalizers' statistics that graphs.keep_buffers_in_place keeps in place.

    On CUDA, from the second rollout on, the whole rollout (every step's sampling, env step and storage) is one
    CUDA graph, replayed once an epoch (with `capture_rollout=True`, which reaches here as params.config's key):
    the host launches nothing per step. The observers then hear of each step after the replay, with that step's
    recorded done mask and infos; where one must look at the simulator during each step (`reads_each_step`, the
    training videos) or the env cannot join a capture (Isaac Gym's), the rollout stays step by step.
    """

    _policy_graph: torch.cuda.CUDAGraph | None = None
    _eager_policy_calls = 0
    _rollout_graph: torch.cuda.CUDAGraph | None = None
    _eager_rollouts = 0
    _records = None
    _finished_episodes = None
    # Set by an update whose caller calls record_finished_episodes() itself, once the epoch's update is queued.
    defer_episode_statistics = False

    def __init__(self, base_name, params) -> None:
        super().__init__(base_name, params)
        if self._owns_rollout():
            # rl_games' episode meters on the host, so that reading them at an epoch's end waits for nothing
            for meter in (self.game_rewards, self.game_shaped_rewards, self.game_lengths):
                meter.to("cpu")

    def _owns_rollout(self) -> bool:
        """Whether this rollout runs (else rl_games' own does: recurrent, central-value and masked-action agents)."""
        return not (self.use_action_masks or self.has_central_value or self.is_rnn)

    def play_steps(self):
        if not self._owns_rollout():
            return super().play_steps()
        records = self._step_records()
        if self._rollout_graph is None and self._captures_rollout():
            self._capture_rollout(records)
        if self._rollout_graph is not None:
            step_time = self._replay_rollout(records)
        else:
            self._eager_rollouts += 1
            step_time = self._run_steps(records, self.get_action_values, observe=True)
        self._finished_episodes = self._gather_finished_episodes(
            records.finished, records.returns, records.shaped_returns, records.lengths
        )
        if not self.defer_episode_statistics:
            self.record_finished_episodes()
        return self._batch_for_update(step_time)

    def _step_records(self) -> types.SimpleNamespace:
        """What each step of a rollout leaves for after it (episode ends and returns, the infos observers hear of),
        in tensors kept for the whole run, which the rollout's graph writes."""
        if self._records is None:
            steps, device, envs = self.horizon_length, self.ppo_device, self.current_lengths.shape
            self._records = types.SimpleNamespace(
                finished=torch.zeros(steps, *envs, dtype=torch.bool, device=device),
                returns=torch.zeros(steps, *self.current_rewards.shape, device=device),
                shaped_returns=torch.zeros(steps, *self.current_rewards.shape, device=device),
                lengths=torch.zeros(steps, *envs, device=device),
                time_outs=torch.zeros(steps, *envs, dtype=torch.bool, device=device),
                nonfinite_resets=torch.zeros(steps, dtype=torch.long, device=device),
            )
        return self._records

    def _run_steps(self, records, sample, observe: bool) -> float:
        """The rollout's steps, as rl_games' play_steps; the seconds spent in env steps (host clock)."""
        step_time = 0.0
        for n in range(self.horizon_length):
            res_dict = sample(self.obs)
            self.experience_buffer.update_data("obses", n, self.obs["obs"])
            self.experience_buffer.update_data("dones", n, self.dones)
            for key in self.update_list:
                self.experience_buffer.update_data(key, n, res_dict[key])
            start = time.perf_counter()
            self.obs, rewards, self.dones, infos = self.env_step(res_dict["actions"])
            step_time += time.perf_counter() - start
            if observe:
                self.algo_observer.process_infos(infos, self.dones)
            else:  # heard of after the graph's replay (_tell_observers)
                records.time_outs[n] = infos["time_outs"]
                records.nonfinite_resets[n] = infos["nonfinite_resets"]
            self._record_step(records, n, rewards, res_dict["values"], infos)
        return step_time

    def _record_step(self, records, n: int, rewards: torch.Tensor, values: torch.Tensor, infos: dict) -> None:
        """rl_games' bookkeeping after step `n`: the shaped reward stored, the running returns and lengths added to
        (and zeroed where an episode ended), as recorded for the episode meters. One Warp kernel where Warp is loaded
        already (MuJoCo Warp) and the agent's kind is the plain one (harness.rl.step_records)."""
        if "warp" in sys.modules:
            from harness.rl import step_records  # (imports Warp, which Isaac Gym's path goes without)

            if step_records.fusable(self, rewards, self.dones):
                step_records.launch(self, records, n, rewards=rewards, values=values, infos=infos)
                return
        self._record_step_in_torch(records, n, rewards, values, infos)

    def _record_step_in_torch(self, records, n: int, rewards: torch.Tensor, values: torch.Tensor, infos: dict) -> None:
        """The same bookkeeping in rl_games' own torch lines: where the kernel does not apply, and what the tests check
        the kernel against."""
        shaped_rewards = self.rewards_shaper(rewards)
        if self.value_bootstrap and "time_outs" in infos:
            time_outs = self.cast_obs(infos["time_outs"]).unsqueeze(1).float()
            shaped_rewards.add_(self.gamma * values * time_outs)
        self.experience_buffer.update_data("rewards", n, shaped_rewards)
        self.current_rewards.add_(rewards)
        self.current_shaped_rewards.add_(shaped_rewards)
        self.current_lengths.add_(1)
        records.finished[n], records.returns[n], records.shaped_returns[n], records.lengths[n] = (
            self.dones,
            self.current_rewards,
            self.current_shaped_rewards,
            self.current_lengths,
        )
        not_done = 1.0 - self.dones.float()
        self.current_rewards.mul_(not_done.unsqueeze(1))
        self.current_shaped_rewards.mul_(not_done.unsqueeze(1))
        self.current_lengths.mul_(not_done)

    # --- the rollout as one CUDA graph ---------------------------------------------------------------------------

    def _captures_rollout(self) -> bool:
        """Whether to capture the rollout now: on CUDA, after one eager rollout (which loads every kernel and makes
        the policy's and the env's own graphs), with this project's sampling and an env that joins a capture."""
        env, observers = self.vec_env.env, getattr(self.algo_observer, "observers", [self.algo_observer])
        return (
            self.config.get("capture_rollout", False)
            and torch.device(self.ppo_device).type == "cuda"
            and self._eager_rollouts >= 1
            and self._policy_graph is not None
            and hasattr(env, "recorded_into_capture")
            and not any(getattr(observer, "reads_each_step", False) for observer in observers)
        )

    def _capture_rollout(self, records) -> None:
        """Record every step of a rollout into one graph, its first policy input read from `_rollout_obs`."""
        self._rollout_obs = self.obs["obs"].clone()
        self.obs = {"obs": self._rollout_obs}
        graphs.keep_buffers_in_place(self.model)
        graph = torch.cuda.CUDAGraph()
        with graphs.capture(graph, self._rollout_obs.device), self.vec_env.env.recorded_into_capture():
            self._run_steps(records, lambda obs: self._sample_actions(obs["obs"]), observe=False)
        self._rollout_graph = graph

    def _replay_rollout(self, records) -> float:
        """One rollout by the graph; then the observers hear of each step, in order, as they would have."""
        graphs.keep_buffers_in_place(self.model)  # the value normalizer's statistics change each epoch
        self._rollout_obs.copy_(self.obs["obs"])
        start = time.perf_counter()
        self._rollout_graph.replay()
        step_time = time.perf_counter() - start  # the launch only: rl_games' step_time no longer isolates the env
        # self.obs and self.dones are the env's buffers, which the capture left them as and the replay has filled
        self._tell_observers(records)
        return step_time

    def _tell_observers(self, records) -> None:
        """Each step's infos and done mask, as recorded by a rollout run with observe=False, in step order."""
        for n in range(self.horizon_length):
            infos = {"time_outs": records.time_outs[n], "nonfinite_resets": records.nonfinite_resets[n]}
            self.algo_observer.process_infos(infos, records.finished[n])

    def get_action_values(self, obs):
        if not self._own_sampling_fits(obs):
            return super().get_action_values(obs)
        if not obs["obs"].is_cuda:
            return self._sample_actions(obs["obs"])
        if self._policy_graph is None:
            if self._eager_policy_calls == 0:  # loads the kernels and libraries the capture will record
                self._eager_policy_calls += 1
                return self._sample_actions(obs["obs"])
            self._capture_policy(obs["obs"])
        graphs.keep_buffers_in_place(self.model)  # the value normalizer's statistics change each epoch
        self._policy_obs.copy_(obs["obs"])
        self._policy_graph.replay()
        return self._policy_outputs

    def _own_sampling_fits(self, obs) -> bool:
        plain = not (self.is_rnn or self.has_central_value or self.use_action_masks)
        gaussian = isinstance(self.model, ModelA2CContinuousLogStd.Network)
        if not (plain and gaussian and isinstance(obs, dict) and torch.is_tensor(obs.get("obs"))):
            return False
        return self._policy_graph is None or obs["obs"].shape == self._policy_obs.shape

    def _sample_actions(self, obs: torch.Tensor) -> dict:
        """rl_games' `get_action_values` for its Gaussian policy (ModelA2CContinuousLogStd), drawing the sample
        as N(0, 1) * std + mean: the same random numbers and arithmetic as its `torch.normal(mean, std)`,
        without that call's host-side check that std >= 0, which no CUDA graph can hold."""
        model = self.model
        model.eval()
        with torch.no_grad():
            inputs = {"is_train": False, "prev_actions": None, "rnn_states": self.rnn_states}
            inputs["obs"] = model.norm_obs(self._preproc_obs(obs))
            mu, logstd, value, states = model.a2c_network(inputs)
            sigma = torch.exp(logstd)
            actions = torch.randn_like(mu).mul_(sigma).add_(mu)
            return {
                "neglogpacs": torch.squeeze(model.neglogp(actions, mu, sigma, logstd)),
                "values": model.denorm_value(value),
                "actions": actions,
                "rnn_states": states,
                "mus": mu,
                "sigmas": sigma,
            }

    def _capture_policy(self, obs: torch.Tensor) -> None:
        self._policy_obs = obs.clone()
        graphs.keep_buffers_in_place(self.model)
        graph = torch.cuda.CUDAGraph()
        with graphs.capture(graph, obs.device):
            self._policy_outputs = self._sample_actions(self._policy_obs)
        self._policy_graph = graph

    def _gather_finished_episodes(self, finished: torch.Tensor, *per_step: torch.Tensor) -> HostCopy:
        """The number of episodes that finished at each step, and their returns, shaped returns and lengths in step
        order and within a step in env order, gathered on the device and copied to the host without waiting."""
        finished_first = torch.sort((~finished).flatten().to(torch.uint8), stable=True).indices
        return HostCopy(finished.sum(1), *(values.flatten(0, 1)[finished_first] for values in per_step))

    def record_finished_episodes(self) -> None:
        """Feed rl_games' episode meters step by step, as its own rollout does after every step.

        One wait, for the copy the GPU made right after the rollout (not for the work queued after it): deferred until
        the epoch's update is queued (`defer_episode_statistics`), it lets the host queue the update first.
        """
        if self._finished_episodes is None:
            return
        finished, self._finished_episodes = self._finished_episodes, None
        counts, returns, shaped_returns, lengths = finished.get()
        start = 0
        for count in counts.tolist():
            end = start + count  # this step's episodes, shaped as rl_games' values[n][done_indices]: (count, 1, ...)
            self.game_rewards.update(returns[start:end].unsqueeze(1))
            self.game_shaped_rewards.update(shaped_returns[start:end].unsqueeze(1))
            self.game_lengths.update(lengths[start:end].unsqueeze(1))
            start = end

    def _batch_for_update(self, step_time: float) -> dict:
        """Advantages and returns of the rollout, flattened as rl_games' update expects (its own helpers)."""
        # The values of the states the rollout ended in, from the action sampling (on CUDA its graph) rather than
        # rl_games' get_values: the same network and random draws, without torch.normal's host-side check that
        # std >= 0, which would make the host wait for the rollout before queueing the update.
        last_values = self.get_action_values(self.obs)["values"]
        buffers = self.experience_buffer.tensor_dict
        advantages = self.discount_values(
            self.dones.float(), last_values, buffers["dones"].float(), buffers["values"], buffers["rewards"]
        )
        batch_dict = self.experience_buffer.get_transformed_list(swap_and_flatten01, self.tensor_list)
        batch_dict["returns"] = swap_and_flatten01(advantages + buffers["values"])
        batch_dict["played_frames"] = self.batch_size
        batch_dict["step_time"] = step_time
        return batch_dict
