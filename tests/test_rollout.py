"""The sync-free rollout gives exactly what rl_games' own rollout gives, on the deterministic CPU physics."""

from __future__ import annotations

import pytest
import torch
from conftest import make_cpu_agent
from rl_games.common.a2c_common import A2CBase


def rollout(play_steps, seed: int = 3):
    """Two epochs' rollouts of a fresh agent on 8 Ant envs whose episodes last 6 steps (horizon 16)."""
    overrides = ("num_envs=8", "task.env.episodeLength=6", "train.params.config.minibatch_size=128")
    agent = make_cpu_agent(*overrides, seed=seed)
    agent.set_eval()
    with torch.no_grad():
        batches = [play_steps(agent) for _ in range(2)]
    stats = [(meter.current_size, meter.mean.clone()) for meter in (agent.game_rewards, agent.game_lengths)]
    return batches, stats


def test_sync_free_rollout_matches_rl_games(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the agent creates its run folder
    ours, our_stats = rollout(lambda agent: agent.play_steps())
    theirs, their_stats = rollout(A2CBase.play_steps)
    for our_batch, their_batch in zip(ours, theirs, strict=True):
        assert our_batch.keys() == their_batch.keys()
        for key, value in their_batch.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(our_batch[key], value), key
    for (our_size, our_mean), (their_size, their_mean) in zip(our_stats, their_stats, strict=True):
        assert our_size == their_size > 0 and torch.allclose(our_mean, their_mean)
    assert our_stats[1][1].item() == pytest.approx(5.0), "episodeLength 6 times out after 5 steps, as upstream"


def test_action_sampling_matches_rl_games(tmp_path, monkeypatch):
    """The rollout's own Gaussian sampling (what its CUDA graph records) draws exactly rl_games' actions."""
    monkeypatch.chdir(tmp_path)
    agent = make_cpu_agent("num_envs=8")
    obs = agent.obs
    obs["obs"] += torch.randn_like(obs["obs"])  # away from the normalizer's initial mean
    torch.manual_seed(11)
    ours = agent.get_action_values(obs)
    torch.manual_seed(11)
    theirs = A2CBase.get_action_values(agent, obs)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert (ours[key] is None and value is None) or torch.equal(ours[key], value), key
    assert ours["actions"].std() > 0.5, "sampled around the means, not the means"
