"""The sync-free PPO update trains exactly as rl_games' own update, on the deterministic CPU physics."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_cpu_agent
from rl_games.common.a2c_common import ContinuousA2CBase


def train_epochs(train_epoch, *overrides: str, epochs: int = 2, seed: int = 5):
    """A fresh agent on 8 Ant envs (episodes of 9 steps), 4 minibatches x 4 mini-epochs an epoch; returns it and each
    epoch's result."""
    config = ("num_envs=8", "task.env.episodeLength=10", "train.params.config.minibatch_size=32", *overrides)
    agent = make_cpu_agent(*config, seed=seed)
    results = []
    for _ in range(epochs):
        agent.epoch_num += 1  # as rl_games' train() does before each epoch; the linear schedule reads it
        results.append(train_epoch(agent))
    return agent, results


def assert_same_training(ours, theirs) -> None:
    (our_agent, our_results), (their_agent, their_results) = ours, theirs
    # The adaptive rate is float32 on the device and a Python float in rl_games: equal to float32 precision.
    # That rounding (1e-8 in the weights after one epoch) grows through the second epoch's physics to 1e-5.
    assert our_agent.last_lr == pytest.approx(their_agent.last_lr, rel=1e-6)
    our_state, their_state = our_agent.model.state_dict(), their_agent.model.state_dict()
    for name, value in their_state.items():  # weights and both normalizers' statistics
        torch.testing.assert_close(our_state[name], value, rtol=1e-4, atol=2e-5, msg=name)
    for meter in ("game_rewards", "game_shaped_rewards", "game_lengths"):  # fed after the update is queued
        ours_meter, theirs_meter = getattr(our_agent, meter), getattr(their_agent, meter)
        assert ours_meter.current_size == theirs_meter.current_size > 0, meter
        torch.testing.assert_close(ours_meter.mean, theirs_meter.mean, rtol=1e-5, atol=1e-5, msg=meter)
    for our_result, their_result in zip(our_results, their_results, strict=True):
        # a_losses, c_losses, b_losses, entropies, kls: one tensor per minibatch (per mini-epoch for kls)
        for ours_logged, theirs_logged in zip(our_result[4:9], their_result[4:9], strict=True):
            assert len(ours_logged) == len(theirs_logged) > 0
            torch.testing.assert_close(torch.stack(ours_logged), torch.stack(theirs_logged), rtol=1e-3, atol=1e-5)
        assert our_result[9] == pytest.approx(their_result[9], rel=1e-6), "logged learning rate"


@pytest.mark.parametrize("schedule_type", ["legacy", "standard"])
def test_sync_free_update_matches_rl_games(tmp_path, monkeypatch, schedule_type):
    monkeypatch.chdir(tmp_path)  # the agent creates its run folder
    schedule = f"train.params.config.schedule_type={schedule_type}"
    ours = train_epochs(lambda agent: agent.train_epoch(), schedule)
    theirs = train_epochs(ContinuousA2CBase.train_epoch, schedule)
    assert ours[0].last_lr != pytest.approx(3e-4), "the adaptive schedule moved the learning rate"
    assert_same_training(ours, theirs)


def test_sync_free_update_with_a_linear_schedule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    schedule = ("train.params.config.lr_schedule=linear", "train.params.config.max_epochs=10")
    ours = train_epochs(lambda agent: agent.train_epoch(), *schedule)
    theirs = train_epochs(ContinuousA2CBase.train_epoch, *schedule)
    assert ours[0].last_lr < 3e-4, "the linear schedule lowered the learning rate"
    assert_same_training(ours, theirs)


def test_checkpoint_keeps_the_learning_rate_a_plain_number(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent, _ = train_epochs(lambda agent: agent.train_epoch(), epochs=1)
    state = agent.get_full_state_weights()
    saved_lr = state["optimizer"]["param_groups"][0]["lr"]
    assert type(saved_lr) is float and saved_lr == pytest.approx(agent.last_lr), "saved as rl_games saves it"
    agent._lr.fill_(1.0)
    agent.set_full_state_weights(state)
    live_lr = agent.optimizer.param_groups[0]["lr"]
    assert agent.last_lr == saved_lr and torch.is_tensor(live_lr) and live_lr.item() == pytest.approx(saved_lr)


def test_normalizer_statistics_stay_in_the_tensors_graphs_captured():
    """rl_games' normalizer replaces its statistics' tensors when it updates; the kept ones get the values back."""
    from rl_games.algos_torch.running_mean_std import RunningMeanStd

    from harness import graphs

    normalizer = RunningMeanStd((3,))
    graphs.keep_buffers_in_place(normalizer)
    kept_mean, kept_count = normalizer.running_mean, normalizer.count
    normalizer.train()
    normalizer(torch.full((4, 3), 2.0))
    assert normalizer.running_mean is not kept_mean, "rl_games assigned a new tensor"
    updated_mean = normalizer.running_mean.clone()
    graphs.keep_buffers_in_place(normalizer)
    assert normalizer.running_mean is kept_mean and normalizer.count is kept_count
    assert torch.equal(kept_mean, updated_mean) and kept_count.item() == 5.0


def test_each_epochs_statistics_are_logged_once_at_its_own_frame(tmp_path, monkeypatch):
    """The epoch loop logs an epoch's losses when the next epoch's work is queued (the last one's when the run ends):
    every epoch's values, at that epoch's frame, equal to the means of rl_games' own per-minibatch lists."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    config = ("num_envs=8", "task.env.episodeLength=10", "train.params.config.minibatch_size=32", "max_iterations=3")
    agent = make_cpu_agent(*config, "train.params.config.bounds_loss_coef=0.0001")
    queued, queue_epoch = [], agent.queue_epoch
    agent.queue_epoch = lambda: queued.append(queue_epoch()) or queued[-1]
    agent.train()
    agent.writer.close()  # (its flush() leaves the events still queued for its writer thread)
    assert len(queued) == 3
    stats = [epoch.read() for epoch in queued]
    for s, epoch in zip(stats, queued, strict=True):  # the one copy's figures are rl_games' lists' means
        means = [torch.stack(values).mean().item() for values in epoch.logged]
        assert [s.actor_loss, s.critic_loss, s.bounds_loss, s.entropy, s.kl] == pytest.approx(means, rel=1e-5)
        assert s.weights_finite
    events = EventAccumulator(str(tmp_path / "runs" / "Ant" / "summaries"))
    events.Reload()
    batch = 8 * agent.horizon_length
    logged = {
        "losses/a_loss": [s.actor_loss for s in stats],
        "losses/c_loss": [s.critic_loss for s in stats],
        "losses/bounds_loss": [s.bounds_loss for s in stats],
        "losses/entropy": [s.entropy for s in stats],
        "info/kl": [s.kl for s in stats],
        "info/last_lr": [s.last_used_lr for s in stats],
    }
    for tag, values in logged.items():
        scalars = events.Scalars(tag)
        assert [e.step for e in scalars] == [0, batch, 2 * batch], tag
        assert [e.value for e in scalars] == pytest.approx(values, rel=1e-6), tag
    assert agent.last_lr == pytest.approx(stats[-1].lr), "the host's rate is the last epoch's"


@pytest.mark.parametrize("clip_value", [True, False])
def test_the_fused_loss_has_rl_games_own_gradients(tmp_path, monkeypatch, clip_value):
    """harness.rl.ppo_loss's one-kernel loss and gradient against rl_games' calc_gradients from the same weights, at
    every minibatch step of three mini-epochs (stepped with rl_games' gradients), with a learning rate high enough
    that the clipping and the bound loss act. (Weights are not compared after steps: Adam's first steps amplify
    float rounding in gradients near zero.)"""
    from rl_games.algos_torch.a2c_continuous import A2CAgent

    monkeypatch.chdir(tmp_path)
    config = ("num_envs=8", "task.env.episodeLength=10", "train.params.config.minibatch_size=32")
    config += ("train.params.config.learning_rate=0.01", "train.params.config.bounds_loss_coef=0.01")
    config += (f"train.params.config.clip_value={clip_value}", "train.params.config.lr_schedule=None")
    config += ("train.params.config.entropy_coef=0.01",)
    agent = make_cpu_agent(*config, seed=5)
    assert agent._fuses_loss()
    agent.set_eval()
    with torch.no_grad():
        batch = agent.play_steps()
    agent.set_train()
    agent.prepare_dataset(batch)
    step, gradients = agent.trancate_gradients_and_step, {}
    agent.trancate_gradients_and_step = lambda: gradients.update({n: p.grad for n, p in agent.model.named_parameters()})

    def gradients_and_result(calc_gradients, minibatch):
        calc_gradients(minibatch)
        return dict(gradients), [torch.as_tensor(x).detach().float() for x in agent.train_result]

    def ratio(model, minibatch):  # the new policy's probability of the actions over the old one's
        inputs = {"is_train": True, "prev_actions": minibatch["actions"], "obs": minibatch["obs"]}
        with torch.no_grad():  # (on a copy: in training mode the forward updates the input normalizer)
            return torch.exp(minibatch["old_logp_actions"] - copy.deepcopy(model)(inputs)["prev_neglogp"])

    clipped = bounded = 0
    for _ in range(3):  # mini-epochs
        for i in range(len(agent.dataset)):
            before = copy.deepcopy(agent.model.state_dict())  # (the forward updates the input normalizer)
            ours, our_result = gradients_and_result(agent.calc_gradients, agent.dataset[i])
            agent.model.load_state_dict(before)
            theirs, their_result = gradients_and_result(lambda mb: A2CAgent.calc_gradients(agent, mb), agent.dataset[i])
            for name, gradient in theirs.items():
                torch.testing.assert_close(ours[name], gradient, rtol=1e-4, atol=1e-6, msg=name)
            for mine, reference in zip(our_result, their_result, strict=True):
                torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-6)
            clipped += int((ratio(agent.model, agent.dataset[i]) - 1.0).abs().gt(agent.e_clip).sum())
            bounded += int(their_result[8] > 0)
            step()  # with rl_games' gradients, which the parameters hold now
        agent.model.running_mean_std.eval()  # as the update does after the first mini-epoch
    assert clipped > 0 and bounded > 0, "the clipped branch and the bound loss were exercised"


def test_the_fused_loss_gives_each_input_a_gradient_of_its_own_dtype():
    """Under mixed precision the mean and value heads give bfloat16 and the log-std float32: each gets its gradient in
    its own dtype (the float32 one not rounded through bfloat16)."""
    from harness.rl.ppo_loss import BATCH_KEYS, FusedPPOLoss

    samples, actions = 6, 3
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(samples, actions, generator=generator).bfloat16().requires_grad_()
    logstd = (0.1 * torch.randn(samples, actions, generator=generator)).requires_grad_()
    value = torch.randn(samples, 1, generator=generator).bfloat16().requires_grad_()
    shapes = {"actions": (samples, actions), "old_logp_actions": (samples,), "advantages": (samples,)}
    shapes |= {
        "old_values": (samples, 1),
        "returns": (samples, 1),
        "mu": (samples, actions),
        "sigma": (samples, actions),
    }
    batch = {key: torch.rand(shapes[key], generator=generator) + 0.5 for key in BATCH_KEYS}
    loss, _ = FusedPPOLoss.apply(mu, logstd, value, batch, (0.2, 2.0, 0.01, 0.0001), True)
    loss.backward()
    assert (mu.grad.dtype, logstd.grad.dtype, value.grad.dtype) == (torch.bfloat16, torch.float32, torch.bfloat16)
    assert logstd.grad.abs().sum() > 0 and not torch.equal(logstd.grad, logstd.grad.bfloat16().float())
