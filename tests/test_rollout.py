"""The sync-free rollout gives exactly what rl_games' own rollout gives, on the deterministic CPU physics."""

from __future__ import annotations

import pytest
import torch
from conftest import CUDA, make_agent, make_cpu_agent
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


def bookkeeping(agent, record_step, steps: int = 6) -> dict[str, torch.Tensor]:
    """`steps` steps of the bookkeeping after an env step, from zeroed running returns, on made-up env outputs (a
    quarter of the worlds' episodes ending each step, half of those by timing out); what it leaves."""
    generator, device = torch.Generator().manual_seed(7), agent.ppo_device
    envs = agent.current_lengths.shape[0]
    for running in (agent.current_rewards, agent.current_shaped_rewards, agent.current_lengths):
        running.zero_()
    records = agent._step_records()
    for n in range(steps):
        rewards, values = torch.randn(envs, 1, generator=generator), torch.randn(envs, 1, generator=generator)
        dones = torch.rand(envs, generator=generator) < 0.25
        time_outs = dones & (torch.rand(envs, generator=generator) < 0.5)
        agent.dones = dones.to(device)
        record_step(records, n, rewards.to(device), values.to(device), {"time_outs": time_outs.to(device)})
    left = {"stored rewards": agent.experience_buffer.tensor_dict["rewards"][:steps]}
    left |= {name: getattr(records, name)[:steps] for name in ("finished", "returns", "shaped_returns", "lengths")}
    left |= {name: getattr(agent, name) for name in ("current_rewards", "current_shaped_rewards", "current_lengths")}
    return {name: value.clone() for name, value in left.items()}


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_the_step_kernel_does_rl_games_bookkeeping_to_the_bit(tmp_path, monkeypatch, device):
    """harness.rl.step_records' kernel against rl_games' own lines of the bookkeeping, with a shaper that shifts and
    clips and the value bootstrap at time-outs: equal to the bit, on the GPU too (where the compiler fuses multiplies
    and adds: the kernel keeps rl_games' order, in which only products by 0 or 1 meet a sum)."""
    from harness.rl import step_records

    monkeypatch.chdir(tmp_path)
    agent = make_agent("task=Ant", "num_envs=512", *SHIFTED_AND_CLIPPED, f"sim_device={device}", f"rl_device={device}")
    assert step_records.fusable(agent, agent.current_rewards, torch.zeros(1, dtype=torch.bool))

    def kernel(records, n, rewards, values, infos):
        step_records.launch(agent, records, n, rewards=rewards, values=values, infos=infos)

    ours, theirs = bookkeeping(agent, kernel), bookkeeping(agent, agent._record_step_in_torch)
    for name, reference in theirs.items():
        assert torch.equal(ours[name], reference), name
    stored = theirs["stored rewards"]
    assert stored.abs().eq(0.02).any() and stored.abs().lt(0.02).any(), "the clip acts, and not on every reward"
    lengths = theirs["current_lengths"]
    assert lengths.eq(0).any() and lengths.gt(1).any(), "episodes ended and went on"


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
