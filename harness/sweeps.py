"""`train.py -m ...` (Hydra multirun): a summary of the jobs at the end, printed and written as JSON."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from harness.runs import RUNS_DIR, experiment_name, write_text_atomic


class SweepSummary(Callback):
    """Hydra callback (cfg/config.yaml, hydra.callbacks): each job writes its overrides, best mean reward and run
    folder as job_<N>.json into the sweep's folder, in whichever process or machine the launcher ran it (locally,
    submitit); at the end the launching process prints them as a table and joins them into summary.json."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:  # Hydra calls back on single runs too
            return
        # A multi-GPU job's other ranks: rank 0 reports the job. (RANK read here, not harness.config.global_rank:
        # Hydra builds this callback before train.py loads the engine, and harness.config would import torch first.)
        if int(os.environ.get("RANK", "0")) != 0:
            return
        completed = job_return.status == JobStatus.COMPLETED
        job = {
            "job": int(config.hydra.job.num),
            "overrides": list(config.hydra.overrides.task),
            "best_reward": job_return.return_value if completed else None,
            "run_folder": str(RUNS_DIR / experiment_name(config)),
            "status": "completed" if completed else f"failed: {job_return.return_value}",
        }
        write_text_atomic(Path(config.hydra.sweep.dir) / f"job_{job['job']}.json", json.dumps(job) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        jobs = sorted((json.loads(path.read_text()) for path in sweep.glob("job_*.json")), key=lambda job: job["job"])
        path = sweep / "summary.json"
        write_text_atomic(path, json.dumps({"jobs": jobs}, indent=2) + "\n")
        print(f"\nSweep of {len(jobs)} jobs (written to {path}):")
        print(f"  {'job':>3}  {'best reward':>11}  run folder")
        for job in jobs:
            reward = job["best_reward"]
            shown = f"{reward:11.2f}" if reward is not None and math.isfinite(reward) else f"{'-':>11}"
            failed = "" if job["status"] == "completed" else f"  ({job['status']})"
            print(f"  {job['job']:>3}  {shown}  {job['run_folder']}{failed}")
