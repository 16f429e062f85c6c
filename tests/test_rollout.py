"""The sync-free rollout gives exactly what rl_games' own rollout gives, on the deterministic CPU physics."""

from __future__ import annotations

import pytest
import torch
from conftest import make_cpu_agent
from rl_games.common.a2c_common import A2CBase

# A reward shaper that shifts and clips (Ant's own only scales): every operation of the step's bookkeeping matters.
SHIFTED_AND_CLIPPED = (
    "+train.params.config.reward_shaper.shift_value=0.3",
    "+train.params.config.reward_shaper.min_val=-0.02",
    "+train.params.config.reward_shaper.max_val=0.02",
)


def rollout(play_steps, *shaper: str, seed: int = 3):
    """Two epochs' rollouts of a fresh agent on 8 Ant envs whose episodes last 6 steps (horizon 16)."""
    overrides = ("num_envs=8", "task.env.episodeLength=6", "train.params.config.minibatch_size=128", *shaper)
    agent = make_cpu_agent(*overrides, seed=seed)
    agent.set_eval()
    with torch.no_grad():
        batches = [play_steps(agent) for _ in range(2)]
    stats = [(meter.current_size, meter.mean.clone()) for meter in (agent.game_rewards, agent.game_lengths)]
    return batches, stats


@pytest.mark.parametrize("shaper", [(), SHIFTED_AND_CLIPPED], ids=["Ant's shaper", "shifted and clipped"])
def test_sync_free_rollout_matches_rl_games(tmp_path, monkeypatch, shaper):
    monkeypatch.chdir(tmp_path)  # the agent creates its run folder
    ours, our_stats = rollout(lambda agent: agent.play_steps(), *shaper)
    theirs, their_stats = rollout(A2CBase.play_steps, *shaper)
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


class Heard:
    """An observer that keeps what it hears of each step."""

    def __init__(self) -> None:
        self.steps = []

    def process_infos(self, infos: dict, dones) -> None:
        self.steps.append((infos["time_outs"].clone(), infos["nonfinite_resets"].clone(), dones.clone()))


def test_observers_hear_of_each_step_after_a_recorded_rollout_as_step_by_step(tmp_path, monkeypatch):
    """The steps the rollout's CUDA graph records (observe=False: each step's infos kept on the device) and what the
    observers hear of them after its replay (_tell_observers) equal what they hear step by step, in order; on the
    CPU the same code runs, minus the graph."""
    monkeypatch.chdir(tmp_path)
    heard, batches = [], []
    for observe in (True, False):
        agent = make_cpu_agent("num_envs=8", "task.env.episodeLength=6", seed=3)
        ear = Heard()
        agent.algo_observer.observers.append(ear)
        agent.set_eval()
        records = agent._step_records()
        sample = agent.get_action_values if observe else lambda obs, agent=agent: agent._sample_actions(obs["obs"])
        with torch.no_grad():
            agent._run_steps(records, sample, observe=observe)
        if not observe:
            agent._tell_observers(records)
        heard.append(ear.steps)
        batches.append({key: value.clone() for key, value in agent.experience_buffer.tensor_dict.items()})
    step_by_step, recorded = heard
    assert len(step_by_step) == len(recorded) == agent.horizon_length
    for ours, theirs in zip(recorded, step_by_step, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert any(time_outs.any() for time_outs, _, _ in recorded), "episodes of 6 steps time out within 16"
    for key, value in batches[0].items():
        assert torch.equal(batches[1][key], value), key


def test_capture_rollout_reaches_the_agent_and_the_cpu_stays_step_by_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = make_cpu_agent("num_envs=8", "capture_rollout=True")
    assert agent.config["capture_rollout"] is True
    agent.set_eval()
    with torch.no_grad():
        for _ in range(2):
            agent.play_steps()
    assert agent._rollout_graph is None and agent._eager_rollouts == 2
    assert make_cpu_agent("num_envs=8").config["capture_rollout"] is False, "off unless asked for"
