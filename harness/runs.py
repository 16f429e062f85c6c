"""The run folder runs/<experiment>/: config.yaml, nn/ (checkpoints), summaries/ (TensorBoard)."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.errors import UserError

RUNS_DIR = Path("runs")


def experiment_name(cfg: DictConfig) -> str:
    """The `experiment` key, else the train config's name (which defaults to the task name)."""
    name = cfg.experiment or cfg.train.params.config.name
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise UserError(f"experiment={name!r} cannot name a run folder; use letters, digits, '-', '_' or '.'")
    return str(name)


def prepare_run_dir(cfg: DictConfig, experiment: str, write: bool = True) -> Path:
    """Create runs/<experiment>/ for a new run and write its config.yaml; refuse to mix into an earlier run.

    Every rank of a multi-GPU run checks (so all refuse together); only rank 0 writes (`write`).
    """
    run_dir = RUNS_DIR / experiment
    earlier = sorted((run_dir / "nn").glob("*.pth"))
    if earlier:
        raise UserError(
            f"{run_dir / 'nn'} already holds {len(earlier)} checkpoint(s) of an earlier run; start a new run with "
            f"experiment=<new name>, or continue that one with checkpoint=auto"
        )
    if not write:
        return run_dir
    try:
        (run_dir / "nn").mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as error:
        raise UserError(
            f"cannot write the run folder {run_dir}: {error.strerror}; run from a writable directory"
        ) from None
    return run_dir


def append_config_history(cfg: DictConfig, experiment: str, write: bool = True) -> Path:
    """On a resume, add this start's resolved config to runs/<experiment>/config_history.yaml; config.yaml stays."""
    path = RUNS_DIR / experiment / "config_history.yaml"
    if write:
        entry = f"--- # resumed {datetime.now().isoformat(timespec='seconds')}\n" + OmegaConf.to_yaml(cfg, resolve=True)
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(entry)
        except OSError as error:
            raise UserError(f"cannot write {path}: {error.strerror}; run from a writable directory") from None
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a crash at any moment leaves the old file or the new one: temp file, fsync, rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    write_atomic(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
