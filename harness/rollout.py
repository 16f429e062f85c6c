"""rl_games' PPO rollout without a host sync at every env step."""

from __future__ import annotations

import time

import torch
from rl_games.common.a2c_common import swap_and_flatten01


class SyncFreeRollout:
    """Replaces rl_games' `A2CBase.play_steps` for feed-forward policies; mix in before rl_games' agent class.

    rl_games looks up the finished episodes with `dones.nonzero()` after every env step, which makes the
    host wait for the GPU sixteen or thirty-two times an epoch, so Python never runs ahead of the GPU.
    Here each step's done mask and running returns are kept on the device, and rl_games' episode
    statistics are updated once after the rollout, step by step in the same order. Observers'
    `process_infos` get the step's done mask (a bool tensor on the device) instead of indices.
    What the rollout stores for the update is rl_games' own.
    """

    def play_steps(self):
        if self.use_action_masks or self.has_central_value or self.is_rnn:
            return super().play_steps()
        steps, device = self.horizon_length, self.ppo_device
        finished = torch.zeros(steps, *self.current_lengths.shape, dtype=torch.bool, device=device)
        returns = torch.zeros(steps, *self.current_rewards.shape, device=device)
        shaped_returns = torch.zeros_like(returns)
        lengths = torch.zeros(steps, *self.current_lengths.shape, device=device)
        step_time = 0.0
        for n in range(steps):
            res_dict = self.get_action_values(self.obs)
            self.experience_buffer.update_data("obses", n, self.obs["obs"])
            self.experience_buffer.update_data("dones", n, self.dones)
            for key in self.update_list:
                self.experience_buffer.update_data(key, n, res_dict[key])
            start = time.perf_counter()
            self.obs, rewards, self.dones, infos = self.env_step(res_dict["actions"])
            step_time += time.perf_counter() - start
            shaped_rewards = self.rewards_shaper(rewards)
            if self.value_bootstrap and "time_outs" in infos:
                time_outs = self.cast_obs(infos["time_outs"]).unsqueeze(1).float()
                shaped_rewards.add_(self.gamma * res_dict["values"] * time_outs)
            self.experience_buffer.update_data("rewards", n, shaped_rewards)
            self.current_rewards.add_(rewards)
            self.current_shaped_rewards.add_(shaped_rewards)
            self.current_lengths.add_(1)
            finished[n], returns[n], shaped_returns[n], lengths[n] = (
                self.dones,
                self.current_rewards,
                self.current_shaped_rewards,
                self.current_lengths,
            )
            self.algo_observer.process_infos(infos, self.dones)
            not_done = 1.0 - self.dones.float()
            self.current_rewards.mul_(not_done.unsqueeze(1))
            self.current_shaped_rewards.mul_(not_done.unsqueeze(1))
            self.current_lengths.mul_(not_done)
        self._record_finished_episodes(finished, returns, shaped_returns, lengths)
        return self._batch_for_update(step_time)

    def _record_finished_episodes(self, finished, returns, shaped_returns, lengths) -> None:
        """rl_games' episode statistics, fed in step order: one host sync for the whole rollout."""
        for n, done in enumerate(finished.unbind(0)):
            done_indices = done.nonzero(as_tuple=False)
            self.game_rewards.update(returns[n][done_indices])
            self.game_shaped_rewards.update(shaped_returns[n][done_indices])
            self.game_lengths.update(lengths[n][done_indices])

    def _batch_for_update(self, step_time: float) -> dict:
        """Advantages and returns of the rollout, flattened as rl_games' update expects (its own helpers)."""
        last_values = self.get_values(self.obs)
        buffers = self.experience_buffer.tensor_dict
        advantages = self.discount_values(
            self.dones.float(), last_values, buffers["dones"].float(), buffers["values"], buffers["rewards"]
        )
        batch_dict = self.experience_buffer.get_transformed_list(swap_and_flatten01, self.tensor_list)
        batch_dict["returns"] = swap_and_flatten01(advantages + buffers["values"])
        batch_dict["played_frames"] = self.batch_size
        batch_dict["step_time"] = step_time
        return batch_dict
