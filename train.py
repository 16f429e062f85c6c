"""Train a task: `python train.py task=Ant` (Hydra overrides as in IsaacGymEnvs)."""

import hydra
from omegaconf import DictConfig

from harness.config import register_resolvers
from harness.errors import report_user_errors

register_resolvers()


@hydra.main(version_base="1.3", config_path="cfg", config_name="config")
def main(cfg: DictConfig) -> None:
    from harness.training import run_train  # after Hydra has parsed the command line: a typo fails fast

    with report_user_errors():
        run_train(cfg)


if __name__ == "__main__":
    main()
