"""harness.graph_checks' env-step and rollout comparisons (what bench/throughput.py reports and the GPU tests assert)
start both runs from the same state. On the CPU there is no graph: both run eagerly, and deterministically, so any
difference is state the comparison failed to restore."""

from __future__ import annotations

import pytest
import torch
from conftest import make_cpu_agent, make_cpu_task

from harness.graph_checks import ROLLOUT_KEYS, compare_graph_with_eager, compare_rollout_eager_with_itself


@pytest.mark.parametrize("name", ["Ant", "Anymal", "Cartpole", "FrankaCabinet", "Humanoid"])
def test_the_env_step_comparison_starts_both_steps_from_the_same_state(name):
    task = make_cpu_task(name, 8)
    task.set_step_mode(graph=False)
    task.reset()
    torch.manual_seed(0)
    for _ in range(20):  # under way: joint targets moved, potentials and contacts there
        task.step(torch.rand(task.num_envs, task.num_actions) * 2 - 1)
    assert compare_graph_with_eager(task) == 0.0


def test_the_rollout_comparison_starts_both_rollouts_from_the_same_state(tmp_path, monkeypatch):
    """Mid-episode Ant worlds, some of which end within the rollout (episodes of 20 steps): two rollouts from one
    saved state store the same batch, so the GPU's eager-against-eager figure is the physics' spread alone."""
    monkeypatch.chdir(tmp_path)
    agent = make_cpu_agent("num_envs=8", "task.env.episodeLength=20", seed=1)
    agent.set_eval()
    with torch.no_grad():
        agent.play_steps()
    assert compare_rollout_eager_with_itself(agent) == dict.fromkeys(ROLLOUT_KEYS, 0.0)
