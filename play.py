"""Play a trained policy: `python play.py task=Ant checkpoint=auto` (Hydra overrides as in train.py)."""

import hydra
from omegaconf import DictConfig

from harness.config import register_resolvers
from harness.errors import report_user_errors

register_resolvers()


@hydra.main(version_base="1.3", config_path="cfg", config_name="config")
def main(cfg: DictConfig) -> None:
    from harness.play import run_play  # after Hydra has parsed the command line: a typo fails fast

    with report_user_errors():
        run_play(cfg)


if __name__ == "__main__":
    main()
