"""Train a task: `python train.py task=Ant` (Hydra overrides as in IsaacGymEnvs)."""

import hydra
from omegaconf import DictConfig

from harness.errors import report_user_errors
from harness.resolvers import register_resolvers
from harness.sim.physx import load_engine

register_resolvers()


@hydra.main(version_base="1.3", config_path="cfg", config_name="config")
def main(cfg: DictConfig) -> None:
    with report_user_errors():
        load_engine(cfg.physics_engine)  # before anything imports torch, which Isaac Gym must precede
        from harness.training import run_train  # after Hydra has parsed the command line: a typo fails fast

        run_train(cfg)


if __name__ == "__main__":
    main()
