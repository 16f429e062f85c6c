"""Train a task: `python train.py task=Ant` (Hydra overrides as in IsaacGymEnvs)."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from harness.engines import get_engine
from harness.errors import report_user_errors
from harness.resolvers import register_resolvers

register_resolvers()
# Jobs that a Hydra launcher starts in processes of their own (hydra/launcher=submitit_local, or on SLURM nodes,
# which get this environment) import the project as this process does.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")])
)


@hydra.main(version_base="1.3", config_path="cfg", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Returns the run's best mean reward, which Hydra's sweepers (-m) read."""
    with report_user_errors():
        get_engine(cfg.physics_engine).load()  # before anything imports torch, which Isaac Gym must precede
        from harness.training import run_train  # after Hydra has parsed the command line: a typo fails fast

        return run_train(cfg)


if __name__ == "__main__":
    main()
