"""harness.graph_checks' env-step comparison (what bench/throughput.py reports and the GPU tests assert) starts the
eager and the captured step from the same state. On the CPU there is no graph: both steps run eagerly, and
deterministically, so any difference is state the comparison failed to restore."""

from __future__ import annotations

import pytest
import torch
from conftest import make_cpu_task

from harness.graph_checks import compare_graph_with_eager


@pytest.mark.parametrize("name", ["Ant", "Anymal", "Cartpole", "FrankaCabinet", "Humanoid"])
def test_the_env_step_comparison_starts_both_steps_from_the_same_state(name):
    task = make_cpu_task(name, 8)
    task.set_step_mode(graph=False)
    task.reset()
    torch.manual_seed(0)
    for _ in range(20):  # under way: joint targets moved, potentials and contacts there
        task.step(torch.rand(task.num_envs, task.num_actions) * 2 - 1)
    assert compare_graph_with_eager(task) == 0.0
