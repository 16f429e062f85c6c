"""The benchmark scripts run end to end on the CPU with tiny budgets and record what they print (their figures
come from GPU runs; here only that they measure what they say)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys

import pytest
import torch
from conftest import CPU, ROOT, run_script, torchrun


def test_scaling_alternates_rounds_and_reports_medians_with_the_spread(tmp_path):
    result = run_script(
        "bench/scaling.py",
        *("--task", "Cartpole", "--gpus", "1", "2", "--num-envs", "8", "--epochs", "5", "--rounds", "2"),
        *("--all-reduce", "auto", "nccl", "--out", str(tmp_path), "--override", *CPU),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (recorded,) = tmp_path.glob("*-Cartpole-scaling.json")
    rows = json.loads(recorded.read_text())["rows"]
    one, two, two_nccl = rows
    launches = [(row["gpus"], row["launch"], row["all_reduce"]) for row in rows]
    assert launches == [(1, "train.py", None), (2, "torchrun", "auto"), (2, "torchrun", "nccl")]
    assert len(one["runs"]) == len(two["runs"]) == len(two_nccl["runs"]) == 2
    assert two["env_steps_per_s"] == statistics.median(two["runs"])
    # each round's 2-GPU run against the same round's 1-GPU run
    ratios = [a / b for a, b in zip(two["runs"], one["runs"], strict=True)]
    assert two["speed_up"] == statistics.median(ratios)
    assert two["speed_up_range"] == [min(ratios), max(ratios)]
    assert "medians of 2 rounds" in result.stdout


def test_throughput_measures_each_part_in_a_process_of_its_own(tmp_path):
    """Stepping, training and rl_games alone each run in a fresh process (so none is timed with another's GPU code
    loaded); the row joins their figures, the table prints the ratio to physics only and the side-by-side speed-up."""
    args = ("--task", "Cartpole", "--num-envs", "16", "--epochs", "3", "--steps", "5", "--device", "cpu")
    result = run_script("bench/throughput.py", *args, "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (recorded,) = tmp_path.glob("*-Cartpole-throughput-*.json")
    (row,) = json.loads(recorded.read_text())["rows"]
    for key in ("physics_only", "env_step", "training", "policy_inference", "training_rl_games"):
        assert row[key] > 0, key
    assert "x the env steps/s of rl_games' own A2CAgent" in result.stdout
    assert not (tmp_path / "runs").exists(), "the run folders go to a temporary folder"

    # one part alone: its own figures only
    part = run_script("bench/throughput.py", "--one", "16", "--part", "training", *args, cwd=tmp_path)
    assert part.returncode == 0, part.stderr[-2000:]
    figures = json.loads([line for line in part.stdout.splitlines() if line.startswith("{")][-1])
    assert "training" in figures and not {"physics_only", "training_rl_games"} & figures.keys()


def test_a_time_to_reward_sweep_cut_short_keeps_the_seeds_that_finished(tmp_path):
    """Killed while its second seed trains (as a device call's time limit would), the sweep has already printed
    and recorded the first."""
    command = [sys.executable, str(ROOT / "bench" / "time_to_reward.py"), "--task", "Cartpole", "--seeds", "1", "2"]
    command += ["--reward", "50", "--out", str(tmp_path), "--override", *CPU, "num_envs=16", "max_iterations=4"]
    options = {"cwd": tmp_path, "stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL, "text": True}
    with subprocess.Popen(command, start_new_session=True, **options) as proc:
        for line in proc.stdout:
            if line.startswith("seed 1 done:"):
                os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the training of seed 2 under it
                break
    assert proc.wait() == -signal.SIGKILL, "the sweep ended before its second seed"
    (recorded,) = tmp_path.glob("*-Cartpole-time-to-reward-*.json")
    (run,) = json.loads(recorded.read_text())["runs"]
    assert run["seed"] == 1 and run["curve"][-1]["epoch"] == 4
    assert 0 < run["first_epoch_s"] <= run["curve"][0]["seconds"], "the first epoch is the start of the training clock"


def test_ranks_that_do_not_agree_on_stopping_each_stop_at_max_iterations(tmp_path):
    """bench/multi_gpu_ablation.py with rank 0's stop decision switched off: rank 1 must still end (it trained on
    until a device call's time limit before), and rank 0 logs every epoch."""
    script = (str(ROOT / "bench" / "multi_gpu_ablation.py"), "task=Cartpole", "num_envs=8", "max_iterations=3")
    launch = ("--standalone", "--nproc_per_node=2", *script, *CPU, "headless=True", "multi_gpu=True")
    result = torchrun(*launch, cwd=tmp_path, timeout=240, env={"ABLATE": "grad,avg,norm,agree"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line.split("|")[0].split()[1] for line in result.stdout.splitlines() if line.startswith("epoch")] == [
        "1/3",
        "2/3",
        "3/3",
    ]


def test_startup_reports_the_first_epoch_line_against_import_torch_with_its_breakdown(tmp_path):
    result = run_script(
        "bench/startup.py",
        *("--task", "Cartpole", "--num-envs", "8", "--runs", "1", "--device", "cpu", "--out", str(tmp_path)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (recorded,) = tmp_path.glob("*-Cartpole-startup-*.json")
    startup = json.loads(recorded.read_text())
    (warm,), (torch_alone,) = startup["first_epoch_line_s"], startup["import_torch_s"]
    assert 0 < torch_alone < warm and startup["after_torch_s"] == warm - torch_alone
    assert {"torch", "warp", "mujoco_warp", "harness"} <= set(startup["imports_s"])
    assert startup["profiled_steps_s"]["  the env (model, worlds, kernels loaded)"] > 0
    assert "the first epoch" in startup["profiled_steps_s"]
    assert "(issue 17's bar: 3 s)" in result.stdout


@pytest.mark.parametrize(("warmup", "epochs"), [("2", "an epoch takes"), ("0", "the first 2 epochs take")])
def test_profile_epoch_writes_the_epochs_time_its_table_and_a_trace(tmp_path, warmup, epochs):
    args = ("--task", "Cartpole", "--num-envs", "8", "--warmup", warmup, "--epochs", "2", "--device", "cpu")
    result = run_script("bench/profile_epoch.py", *args, "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Cartpole, 8 envs on cpu: {epochs}" in result.stdout
    assert (tmp_path / "profile-Cartpole-8.txt").read_text().startswith(f"Cartpole, 8 envs on cpu: {epochs}")
    assert json.loads((tmp_path / "profile-Cartpole-8.json").read_text())["traceEvents"]
    assert not (tmp_path / "runs").exists(), "the run folder goes to a temporary folder"


def test_kernel_count_counts_each_part_of_an_env_step(tmp_path):
    """A whole step runs at least its parts (observations twice, reward, resets); each part runs operations, and so do
    the agent's rollout beyond the env and its update (a forward, backward and Adam step: more than the rollout)."""
    result = run_script("bench/kernel_count.py", "--task", "Cartpole", "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (recorded,) = tmp_path.glob("*-kernel-count.json")
    (row,) = json.loads(recorded.read_text())["rows"]
    assert row["task"] == "Cartpole" and min(row["observations"], row["reward"], row["resets"]) > 0
    assert row["step"] >= 2 * row["observations"] + row["reward"] + row["resets"]
    rollout, update = row["rollout_beyond_env_per_step"], row["update_per_minibatch_step"]
    assert 0 < rollout < update
    assert f"{'Cartpole':>12} | {row['step']:>12} | " in result.stdout


def test_kernel_count_counts_a_tasks_warp_kernels():
    from conftest import make_ant

    sys.path.insert(0, str(ROOT / "bench"))
    from kernel_count import count_operations

    ant = make_ant(2)
    ant.reset()
    assert count_operations(ant.compute_observations) == {"warp:observe": 1}
    assert count_operations(ant.compute_reward) == {"warp:reward": 1}


def test_kernel_count_leaves_views_out():
    sys.path.insert(0, str(ROOT / "bench"))
    from kernel_count import count_operations

    a, b = torch.ones(4, 3), torch.ones(4, 3)
    assert count_operations(lambda: (a[:, :2] + b[:, 1:]).unsqueeze(0).sum()) == {"add": 1, "sum": 1}
