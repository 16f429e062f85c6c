"""`train.py -m` (Hydra multirun) on the CPU: one run folder per job, never mixed, and the sweep's summary. Sweeps
whose jobs run in the launching process run train.py's module in this one; submitit's run as processes."""

from __future__ import annotations

import json

import pytest
from conftest import CPU, CUDA, ROOT, run_in_process, run_script

SWEEP = ["-m", "task=Cartpole", "seed=1,2", "num_envs=16", "max_iterations=3", "train.params.config.save_best_after=1"]


def test_a_seed_sweep_trains_each_job_into_its_own_run_folder_and_sums_up(tmp_path):
    result = run_in_process("train.py", *SWEEP, *CPU, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    runs = tmp_path / "runs"
    stem = "Cartpole_max_iterations-3_num_envs-16_seed-{}_save_best_after-1"
    folders = [runs / stem.format(seed) for seed in (1, 2)]
    assert sorted(p.name for p in runs.iterdir()) == sorted([*(f.name for f in folders), "sweeps"])
    assert [p.name for p in tmp_path.iterdir()] == ["runs"], "nothing else lands in the working directory"
    for seed, folder in zip((1, 2), folders, strict=True):
        assert f"seed: {seed}\n" in (folder / "config.yaml").read_text()
        assert any((folder / "nn").glob("*.pth"))
    (sweep,) = (runs / "sweeps").iterdir()
    jobs = json.loads((sweep / "summary.json").read_text())["jobs"]
    assert [job["run_folder"] for job in jobs] == [str(f.relative_to(tmp_path)) for f in folders]
    assert all(job["status"] == "completed" and isinstance(job["best_reward"], float) for job in jobs), jobs
    assert [f"seed={seed}" in job["overrides"] for seed, job in zip((1, 2), jobs, strict=True)] == [True, True]
    assert f"Sweep of 2 jobs (written to {sweep.relative_to(tmp_path)}/summary.json)" in result.stdout


def test_the_same_sweep_again_refuses_to_mix_into_its_runs(tmp_path):
    one_job = ["-m", "task=Cartpole", "seed=1", "num_envs=16", "max_iterations=1", *CPU]
    assert run_in_process("train.py", *one_job, cwd=tmp_path).returncode == 0
    again = run_in_process("train.py", *one_job, cwd=tmp_path)
    assert again.returncode != 0 and "already holds" in again.stderr and "Traceback" not in again.stderr


def test_a_sweep_through_submitit_runs_its_jobs_in_processes_of_their_own(tmp_path):
    """hydra/launcher=submitit_local: the stand-in here for submitit_slurm (the same launcher code minus SLURM)."""
    sweep = ["-m", "hydra/launcher=submitit_local", "task=Cartpole", "seed=1,2", "num_envs=16", "max_iterations=2"]
    result = run_script("train.py", *sweep, *CPU, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    names = [f"Cartpole_max_iterations-2_num_envs-16_seed-{seed}" for seed in (1, 2)]
    for name in names:
        assert any((tmp_path / "runs" / name / "nn").glob("*.pth")), name
    (folder,) = (tmp_path / "runs" / "sweeps").iterdir()
    assert any((folder / ".submitit").iterdir()), "submitit's job logs"
    jobs = json.loads((folder / "summary.json").read_text())["jobs"]
    assert [(job["run_folder"], job["status"]) for job in jobs] == [(f"runs/{name}", "completed") for name in names]


def test_the_shipped_slurm_launcher_config_is_submitits_with_one_gpu_a_job():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "cfg"), version_base="1.3"):
        cfg = compose("config", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes, launcher.partition) == (1, 1, 1, "gpu")
    assert launcher.submitit_folder.startswith("runs/sweeps/") and launcher.submitit_folder.endswith("/.submitit/%j")


def test_an_optuna_search_with_the_shipped_config_maximises_the_best_reward(tmp_path):
    """Trials shorter than save_best_after (50 for Cartpole), so no best checkpoint: each still returns the best mean
    reward it reached (it returned None before, and Optuna failed the search)."""
    sweep = ["-m", "hydra/sweeper=optuna_lr", "hydra.sweeper.n_trials=2", "task=Cartpole", "num_envs=16"]
    tiny = ["max_iterations=2", *CPU]
    result = run_in_process("train.py", *sweep, *tiny, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (folder,) = (tmp_path / "runs" / "sweeps").iterdir()
    jobs = json.loads((folder / "summary.json").read_text())["jobs"]
    assert len(jobs) == 2 and all(isinstance(job["best_reward"], float) for job in jobs), jobs
    rates = {float(o.split("=")[1]) for job in jobs for o in job["overrides"] if o.startswith("train.params.config.le")}
    assert len(rates) == 2 and all(1e-4 <= rate <= 3e-3 for rate in rates), "two trials within the config's range"
    for job in jobs:
        assert (tmp_path / job["run_folder"]).is_dir() and "_learning_rate-" in job["run_folder"]


def test_a_submitit_job_of_two_tasks_trains_as_two_ranks(tmp_path):
    """hydra.launcher.tasks_per_node=2 with multi_gpu=True: submitit's tasks become the ranks (here CPU processes)."""
    job = ["-m", "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2", "multi_gpu=True", "task=Cartpole"]
    tiny = ["seed=1", "num_envs=16", "max_iterations=2", "train.params.config.save_best_after=1", *CPU]
    result = run_script("train.py", *job, *tiny, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (sweep,) = (tmp_path / "runs" / "sweeps").iterdir()
    logs = "".join(path.read_text() for path in sweep.glob(".submitit/*/*_log.out"))
    assert "Training Cartpole: 16 envs x 2 ranks on cpu" in logs, logs[-2000:]
    (job_summary,) = json.loads((sweep / "summary.json").read_text())["jobs"]
    assert job_summary["status"] == "completed" and isinstance(job_summary["best_reward"], float), job_summary


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_a_sweep_of_two_tasks_trains_both_in_one_process(tmp_path, device):
    """Hydra's basic launcher runs a sweep's jobs in one process: the second job's agent, envs and (on a GPU) graphs
    are built where the first's ran. (On a GPU, a test that builds two agents in one process once failed on an empty
    kernel cache: bench/results/2026-11-27-main-as-merged-and-2-GPU-rollout-H100x2.md.)"""
    num_envs = 16 if device == "cpu" else 256
    sweep = ["-m", "task=Ant,Cartpole", f"num_envs={num_envs}", "max_iterations=3", "headless=True"]
    result = run_script("train.py", *sweep, f"sim_device={device}", f"rl_device={device}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (folder,) = (tmp_path / "runs" / "sweeps").iterdir()
    jobs = json.loads((folder / "summary.json").read_text())["jobs"]
    assert [job["status"] for job in jobs] == ["completed", "completed"], jobs
    stem = f"_max_iterations-3_num_envs-{num_envs}"
    assert [job["run_folder"] for job in jobs] == [f"runs/Ant{stem}", f"runs/Cartpole{stem}"]
    assert all(any((tmp_path / job["run_folder"] / "nn").glob("*.pth")) for job in jobs)
