"""On a GPU: every CUDA graph lands where the same work run eagerly lands, and a short training learns.

Marked `cuda`, so CI (no GPU) deselects them; on a GPU machine: `python -m pytest -m cuda`. The comparisons are
harness.graph_checks', which bench/throughput.py also reports.
"""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config, make_agent, run_script
from omegaconf import OmegaConf

from harness.checkpoints import load_checkpoint
from harness.config import prepare_config
from harness.graph_checks import (
    compare_graph_with_eager,
    compare_policy_graph_with_eager,
    compare_rollout_graph_with_eager,
    compare_update_graph_with_eager,
)

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
GPU = ["sim_device=cuda:0", "rl_device=cuda:0"]


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """Ant's agent on the GPU after three epochs: the policy's and the update's graphs are captured by then."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("graphs"))
        agent = make_agent("task=Ant", "num_envs=256", *GPU)
        for _ in range(3):
            agent.train_epoch()
        yield agent
        agent.release_graphs()


def test_the_update_graph_lands_where_the_eager_minibatch_step_does(agent):
    assert agent._update_graph is not None
    assert agent._fuses_loss(), "the graph holds the PPO loss's Warp kernel (harness.rl.ppo_loss)"
    assert compare_update_graph_with_eager(agent) < 1e-6


def test_the_policy_graph_samples_as_rl_games_own_action_sampling(agent):
    assert agent._policy_graph is not None
    assert compare_policy_graph_with_eager(agent) < 1e-6


def test_the_rollout_graph_lands_where_the_step_by_step_rollout_does(tmp_path, monkeypatch):
    """Cartpole (no contacts): a rollout replayed from its graph against the same rollout step by step, from the
    same worlds, episodes and random number generators."""
    monkeypatch.chdir(tmp_path)
    agent = make_agent("task=Cartpole", "num_envs=256", "capture_rollout=True", *GPU)
    try:
        for _ in range(3):
            agent.train_epoch()
        assert agent._rollout_graph is not None
        assert max(compare_rollout_graph_with_eager(agent).values()) < 1e-5
    finally:
        agent.release_graphs()


def test_the_env_step_graph_lands_where_the_eager_step_does():
    """Cartpole: no contacts, whose forces would amplify MuJoCo Warp's rounding differences on the GPU."""
    from harness.tasks import make_task

    cfg = prepare_config(compose_config("task=Cartpole", "num_envs=256", *GPU))
    task = make_task(OmegaConf.to_container(cfg.task, resolve=True), cfg.sim_device, cfg.rl_device)
    task.set_step_mode(graph=False)
    task.reset()
    for _ in range(5):
        task.step(torch.rand(task.num_envs, task.num_actions, device=task.device) * 2 - 1)
    assert compare_graph_with_eager(task) < 1e-5


def test_a_short_training_on_the_gpu_learns(tmp_path):
    result = run_script("train.py", "task=Cartpole", "max_iterations=60", "headless=True", *GPU, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    best = load_checkpoint(tmp_path / "runs" / "Cartpole" / "nn" / "Cartpole.pth")
    # Random actions keep the pole up for a few steps; on an H100 seeds 1-3 averaged 300-480 by epoch 60.
    assert best["last_mean_rewards"] > 200
