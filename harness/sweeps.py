"""`train.py -m ...` (Hydra multirun): a summary of the jobs at the end, printed and written as JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from harness.runs import RUNS_DIR, experiment_name, write_text_atomic


class SweepSummary(Callback):
    """Hydra callback (cfg/config.yaml, hydra.callbacks): each job's overrides, best mean reward and run folder;
    at the end of the sweep a table and runs/sweeps/<date>_<time>/summary.json."""

    def __init__(self) -> None:
        self.jobs: list[dict] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:  # Hydra calls back on single runs too
            return
        completed = job_return.status == JobStatus.COMPLETED
        self.jobs.append(
            {
                "job": int(config.hydra.job.num),
                "overrides": list(config.hydra.overrides.task),
                "best_reward": job_return.return_value if completed else None,
                "run_folder": str(RUNS_DIR / experiment_name(config)),
                "status": "completed" if completed else f"failed: {job_return.return_value}",
            }
        )

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        path = Path(config.hydra.sweep.dir) / "summary.json"
        write_text_atomic(path, json.dumps({"jobs": self.jobs}, indent=2) + "\n")
        print(f"\nSweep of {len(self.jobs)} jobs (written to {path}):")
        print(f"  {'job':>3}  {'best reward':>11}  run folder")
        for job in self.jobs:
            reward = job["best_reward"]
            shown = f"{reward:11.2f}" if reward is not None and math.isfinite(reward) else f"{'-':>11}"
            print(
                f"  {job['job']:>3}  {shown}  {job['run_folder']}"
                + ("" if job["status"] == "completed" else f"  ({job['status']})")
            )
