"""The benchmark scripts run end to end on the CPU with tiny budgets and record what they print (their figures
come from GPU runs; here only that they measure what they say)."""

from __future__ import annotations

import json
import statistics

from conftest import run_script

CPU = ["sim_device=cpu", "rl_device=cpu"]


def test_scaling_alternates_rounds_and_reports_medians_with_the_spread(tmp_path):
    result = run_script(
        "bench/scaling.py",
        *("--task", "Cartpole", "--gpus", "1", "2", "--num-envs", "8", "--epochs", "5", "--rounds", "2"),
        *("--out", str(tmp_path), "--override", *CPU),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (recorded,) = tmp_path.glob("*-Cartpole-scaling.json")
    rows = json.loads(recorded.read_text())["rows"]
    one, two = rows
    assert (one["gpus"], one["launch"], two["gpus"], two["launch"]) == (1, "train.py", 2, "torchrun")
    assert len(one["runs"]) == len(two["runs"]) == 2
    assert two["env_steps_per_s"] == statistics.median(two["runs"])
    # each round's 2-GPU run against the same round's 1-GPU run
    ratios = [a / b for a, b in zip(two["runs"], one["runs"], strict=True)]
    assert two["speed_up"] == statistics.median(ratios)
    assert two["speed_up_range"] == [min(ratios), max(ratios)]
    assert "medians of 2 rounds" in result.stdout
