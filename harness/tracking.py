"""Weights & Biases (wandb_activate=True, with IsaacGymEnvs' wandb_* keys): the run's config, TensorBoard's scalars
as they are written, and where its checkpoints are; rank 0 only."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf

from harness.checkpoints import latest_checkpoint
from harness.errors import UserError
from harness.runs import RunFolder, write_text_atomic


@contextmanager
def wandb_run(cfg: DictConfig, run: RunFolder, resuming_in_place: bool) -> Iterator[None]:
    """A W&B run around the training, when cfg.wandb_activate: started before rl_games makes its TensorBoard writer
    (whose scalars W&B then mirrors, as in IsaacGymEnvs), continued by a resume of the same run folder (its id is
    kept in the folder), finished with the training, whichever way that ends. WANDB_MODE=offline keeps it on disk."""
    if not cfg.wandb_activate:
        yield
        return
    try:
        import wandb
    except ImportError:
        raise UserError("wandb_activate=True needs the wandb package: pip install wandb") from None
    wandb_run = _start(wandb, cfg, run, resuming_in_place)
    exit_code = 1
    try:
        yield
        exit_code = 0
    finally:
        wandb_run.summary.update(_checkpoints(run))
        wandb_run.finish(exit_code=exit_code)


def _start(wandb, cfg: DictConfig, run: RunFolder, resuming_in_place: bool):
    known = run.wandb_run_id.read_text().strip() if resuming_in_place and run.wandb_run_id.is_file() else None
    run_id = known or secrets.token_hex(4)  # W&B's ids: letters and digits
    default_name = cfg.wandb_name in ("", cfg.train.params.config.name)  # IsaacGymEnvs' default: the train name
    run.wandb_files.mkdir(parents=True, exist_ok=True)
    try:
        wandb_run = wandb.init(
            project=cfg.wandb_project,
            entity=cfg.wandb_entity or None,
            group=cfg.wandb_group or None,
            name=run.experiment if default_name else cfg.wandb_name,
            tags=list(cfg.wandb_tags) or None,
            id=run_id,
            resume="allow",
            dir=str(run.path),
            config=OmegaConf.to_container(cfg, resolve=True),
            sync_tensorboard=True,
        )
    except (wandb.errors.Error, OSError) as error:  # no login, no network, a bad entity or project, ...
        said = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"wandb_activate=True: W&B did not start ({said}); log in with `wandb login`, or set WANDB_MODE=offline"
        ) from None
    write_text_atomic(run.wandb_run_id, run_id + "\n")
    if cfg.wandb_logcode_dir:
        wandb_run.log_code(root=cfg.wandb_logcode_dir)
    return wandb_run


def _checkpoints(run: RunFolder) -> dict:
    """The run's folder and checkpoints, for the W&B run's summary."""
    best = run.best_checkpoint if run.best_checkpoint.is_file() else None
    paths = {"run_folder": run.path, "checkpoint/best": best, "checkpoint/latest": latest_checkpoint(run)}
    return {key: str(path.resolve()) for key, path in paths.items() if path is not None}
