"""`train.py -m` (Hydra multirun) on the CPU: one run folder per job, never mixed, and the sweep's summary."""

from __future__ import annotations

import json

from conftest import CPU, run_script

SWEEP = ["-m", "task=Cartpole", "seed=1,2", "num_envs=16", "max_iterations=3", "train.params.config.save_best_after=1"]


def test_a_seed_sweep_trains_each_job_into_its_own_run_folder_and_sums_up(tmp_path):
    result = run_script("train.py", *SWEEP, *CPU, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    runs = tmp_path / "runs"
    stem = "Cartpole_max_iterations-3_num_envs-16_seed-{}_train.params.config.save_best_after-1"
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
    assert run_script("train.py", *one_job, cwd=tmp_path).returncode == 0
    again = run_script("train.py", *one_job, cwd=tmp_path)
    assert again.returncode != 0 and "already holds" in again.stderr and "Traceback" not in again.stderr
