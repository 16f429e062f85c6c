"""The run folder runs/<experiment>/: config.yaml, nn/ (checkpoints), summaries/ (TensorBoard)."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.errors import UserError

RUNS_DIR = Path("runs")
LOCK_NAME = ".lock"  # in runs/<experiment>/, held by the training process (RunLock)
TEMP_SUFFIX = ".tmp"  # of the temporary files atomic writes rename into place


@dataclass(frozen=True)
class RunFolder:
    """runs/<experiment>/ and every name in it (README: Run folder). The one place the layout is spelled out."""

    experiment: str
    root: Path = RUNS_DIR

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> RunFolder | None:
        """The run folder a checkpoint file is in (<root>/<experiment>/nn/<file>), or None for a file elsewhere."""
        if checkpoint.parent.name != "nn":
            return None
        return cls(checkpoint.parent.parent.name, checkpoint.parent.parent.parent)

    @property
    def path(self) -> Path:
        return self.root / self.experiment

    @property
    def nn(self) -> Path:
        """The checkpoints (rl_games' nn/)."""
        return self.path / "nn"

    @property
    def config_file(self) -> Path:
        """The resolved config of the run, written once at its start."""
        return self.path / "config.yaml"

    @property
    def config_history(self) -> Path:
        """Each resume's resolved config, appended."""
        return self.path / "config_history.yaml"

    @property
    def best_checkpoint(self) -> Path:
        """rl_games' best checkpoint, nn/<experiment>.pth."""
        return self.nn / f"{self.experiment}.pth"

    @property
    def videos(self) -> Path:
        """play.py video=True's MP4s."""
        return self.path / "videos"

    @property
    def plays(self) -> Path:
        """play.py's JSON reports."""
        return self.path / "play"

    @property
    def exported(self) -> Path:
        """play.py export=onnx|jit's policies."""
        return self.path / "exported"

    @property
    def wandb_run_id(self) -> Path:
        """The id of the run's Weights & Biases run (wandb_activate=True), so that a resume continues it."""
        return self.path / "wandb_run_id"

    @property
    def wandb_files(self) -> Path:
        """What the wandb package keeps on disk for the run (its offline runs too)."""
        return self.path / "wandb"

    def holds(self, checkpoint: Path) -> bool:
        """Whether `checkpoint` is one of this run's own files."""
        return checkpoint.parent.resolve() == self.nn.resolve()


def experiment_name(cfg: DictConfig) -> str:
    """The `experiment` key, else the train config's name (which defaults to the task name); in a sweep
    (`train.py -m`), followed by the job's own overrides: runs/Ant_seed-1, runs/Ant_seed-2, ..."""
    name = cfg.experiment or cfg.train.params.config.name
    overrides = _sweep_job_overrides()
    if name and overrides:
        name = f"{name}_{overrides.replace('/', '-')}"
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise UserError(f"experiment={name!r} cannot name a run folder; use letters, digits, '-', '_' or '.'")
    return str(name)


# Keys that choose where and how a run goes rather than what it learns: left out of a sweep job's run folder name.
NOT_IN_RUN_NAMES = {
    "task", "experiment", "checkpoint", "headless", "sim_device", "rl_device", "multi_gpu", "verbose", "test"
}  # fmt: skip


def _sweep_job_overrides() -> str | None:
    """In a Hydra multirun, the job's own overrides as `key-value` joined by `_`, sorted, each key by its last part
    (seed-1_learning_rate-0.0003, sorted by the whole key), less NOT_IN_RUN_NAMES; None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    items = []
    for override in sorted(HydraConfig.get().overrides.task):
        key, _, value = override.lstrip("+~").partition("=")
        if key not in NOT_IN_RUN_NAMES and not key.startswith("hydra"):
            items.append(f"{key.rsplit('.', 1)[-1]}-{value}")
    return "_".join(items)


def prepare_run_dir(cfg: DictConfig, run: RunFolder, write: bool = True) -> Path:
    """Create the run folder for a new run and write its config.yaml; refuse to mix into an earlier run.

    Every rank of a multi-GPU run checks (so all refuse together); only rank 0 writes (`write`).
    """
    run_dir = run.path
    earlier = sorted(run.nn.glob("*.pth"))
    if earlier:
        raise UserError(
            f"{run.nn} already holds {len(earlier)} checkpoint(s) of an earlier run; start a new run with "
            f"experiment=<new name>, or continue that one with checkpoint=auto"
        )
    if not write:
        return run_dir
    try:
        run.nn.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.config_file, OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as error:
        raise UserError(
            f"cannot write the run folder {run_dir}: {error.strerror}; run from a writable directory"
        ) from None
    return run_dir


def append_config_history(cfg: DictConfig, run: RunFolder, write: bool = True) -> Path:
    """On a resume, add this start's resolved config to the run's config_history.yaml; config.yaml stays."""
    path = run.config_history
    if write:
        entry = f"--- # resumed {datetime.now().isoformat(timespec='seconds')}\n" + OmegaConf.to_yaml(cfg, resolve=True)
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(entry)
        except OSError as error:
            raise UserError(f"cannot write {path}: {error.strerror}; run from a writable directory") from None
    return path


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `path` for the block to write; then fsync, rename over `path` and fsync of the
    directory (which makes the rename itself durable), so that a crash or power loss at any moment leaves the old
    file or the new one. A failed block leaves nothing. `suffix` keeps an extension a writer goes by (.mp4)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}{suffix}"
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:  # a failed write() names no file: name the target
            error.filename = str(path)
        raise
    _fsync(path.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file atomically (see atomic_path), with the usual mode: 0o666 less the umask, as open() makes it."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    write_atomic(path, text.encode("utf-8"))


def sweep_temporary_files(run_dir: Path) -> list[Path]:
    """Delete what training's writes, killed mid-way, left in a run folder (call it holding the run's lock)."""
    stale = [p for folder in (run_dir, run_dir / "nn") for p in folder.glob(f".*{TEMP_SUFFIX}")]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@dataclass(frozen=True)
class RunsBefore:
    """Whether runs/ and the run folder existed before a start, to put things back if the start fails."""

    runs_existed: bool
    run_existed: bool

    def restore(self, run_dir: Path) -> None:
        """Remove what a failed start made: the run folder if it was new, runs/ if it was new and is now empty."""
        if not self.run_existed:
            shutil.rmtree(run_dir, ignore_errors=True)
        if not self.runs_existed and run_dir.parent.is_dir() and not any(run_dir.parent.iterdir()):
            run_dir.parent.rmdir()


class RunLock:
    """An exclusive lock on runs/<experiment>/ held by the process that trains it, for its whole life.

    flock on runs/<experiment>/.lock: the kernel drops it when the process ends, however it ends, so a killed
    run never blocks the next one. The file names the holder (pid and host) for the refusal message.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._file = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115  (held open: the lock lives with the file)
        except OSError as error:
            raise UserError(
                f"cannot write the run folder {self.path.parent}: {error.strerror}; run from a writable directory"
            ) from None
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise UserError(
                f"{self.path.parent} is in use: {holder} is training it; wait for it to end, or train another "
                "experiment=<name>"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock
            self._file = None
