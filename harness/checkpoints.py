"""Checkpoint files: atomic writes, rl_games' file names, and which file `checkpoint=` means."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.errors import UserError
from harness.runs import RunFolder, write_atomic

# rl_games names its end-of-training file last_<name>_ep_<N>_rew__<R>_ (a printed array); use the periodic form.
_ARRAY_REWARD = re.compile(r"_rew__\[?(?P<reward>[^\]_]*)\]?_$")


def checkpoint_path(stem: str) -> Path:
    """The .pth path for an rl_games checkpoint stem, with the reward written as in periodic checkpoints."""
    return Path(_ARRAY_REWARD.sub(r"_rew_\g<reward>", stem) + ".pth")


def save_atomic(state: dict, path: Path) -> None:
    """Write a checkpoint so that a crash at any moment leaves either the old file or the new one."""
    # Serialized in memory first: torch.save hides a failed write (a full disk) behind a vague RuntimeError,
    # while a plain write raises the OSError that says what happened.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getbuffer())


def strip_compile_prefix(state_dict: dict) -> dict:
    """Drop the `_orig_mod.` prefix torch.compile adds, so plain rl_games can load the weights."""
    return {key.replace("_orig_mod.", ""): value for key, value in state_dict.items()}


# rl_games' periodic names, and its end-of-training names before checkpoint_path() tidies them.
_PERIODIC = re.compile(r"^last_(?P<name>.+)_ep_(?P<epoch>\d+)_rew_(?P<reward>.+)\.pth$")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file chosen to play or resume, with why it was chosen."""

    path: Path
    reason: str


def periodic_epoch_and_reward(path: Path, experiment: str | None = None) -> tuple[int, float] | None:
    """Epoch and mean reward from a periodic checkpoint name (of `experiment`, unless None); None for other files."""
    match = _PERIODIC.match(path.name)
    if not match or (experiment is not None and match["name"] != experiment):
        return None
    try:
        return int(match["epoch"]), float(match["reward"].strip("_[]"))
    except ValueError:
        return None


def resolve_checkpoint(spec: str, runs_dir: Path, experiment: str) -> Checkpoint:
    """Find the file `checkpoint=<spec>` means: auto, best, latest, a .pth path, or a run folder."""
    if spec in ("auto", "best", "latest"):
        return _choose_in_run(RunFolder(experiment, runs_dir), spec)
    path = Path(spec)
    if path.is_file():
        return Checkpoint(path, "the file given")
    if path.is_dir():
        run_dir = path.parent if path.name == "nn" else path
        return _choose_in_run(RunFolder(run_dir.name, run_dir.parent), "auto")
    raise UserError(
        f"checkpoint={spec}: no such file or run folder; give auto, best, latest, a .pth file or a run folder"
    )


def _choose_in_run(run: RunFolder, rule: str) -> Checkpoint:
    nn, experiment, runs_dir = run.nn, run.experiment, run.root
    if not nn.is_dir():
        runs = sorted(p.name for p in runs_dir.glob("*") if RunFolder(p.name, runs_dir).nn.is_dir())
        found = f"runs there: {', '.join(runs)}" if runs else f"there are no runs under {runs_dir}/"
        raise UserError(f"no run folder {run.path} with checkpoints; pick one with experiment=<name> ({found})")
    best = run.best_checkpoint
    if rule in ("auto", "best") and best.is_file():
        return Checkpoint(best, "the best checkpoint of the run")
    if rule == "best":
        raise UserError(f"{nn} has no best checkpoint {best.name} yet; use checkpoint=latest or checkpoint=auto")
    newest = latest_checkpoint(run)
    if newest is None:
        raise UserError(f"{nn} holds no checkpoint of experiment {experiment}; train first, or pick another run")
    why = "the newest periodic checkpoint" + (" (the run has no best checkpoint yet)" if rule == "auto" else "")
    return Checkpoint(newest, why)


def latest_checkpoint(run: RunFolder) -> Path | None:
    """The run's periodic checkpoint of the highest epoch (by its name), or None if it has none."""
    periodic = {p: periodic_epoch_and_reward(p, run.experiment) for p in run.nn.glob("last_*.pth")}
    periodic = {p: epoch_reward for p, epoch_reward in periodic.items() if epoch_reward is not None}
    return max(periodic, key=lambda p: periodic[p][0]) if periodic else None


def load_checkpoint(path: Path) -> dict:
    """Read an rl_games checkpoint as data: tensors, plain Python values and the allow-listed numpy scalars, never
    code. A damaged file, or one that holds anything else (a pickled object or call), is a UserError."""
    try:
        state = _load_as_data(path)
    except Exception as error:  # torch.load raises many types for a damaged file
        refused = _REFUSED.search(str(error))
        if refused:
            what = refused["name"] or refused["object"]
            raise UserError(
                f"{path} was not loaded: besides weights it holds {what}, which loading would run as code; "
                "load only checkpoints you trust, written by rl_games or this project"
            ) from None
        # torch's weights-only message opens with advice to load unsafely; what went wrong is on a later line.
        cause = re.search(r"WeightsUnpickler error:\s*(\S.*)", str(error))
        detail = cause[1] if cause else str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path} is not a readable checkpoint (truncated or corrupt?): {detail}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise UserError(f"{path} is not an rl_games checkpoint: it has no 'model' weights")
    return state


def _load_as_data(path: Path):
    allowed = _allowed_globals()
    if not hasattr(torch.serialization, "safe_globals"):  # torch 2.4 (Isaac Gym's environments)
        torch.serialization.add_safe_globals(allowed)
        return torch.load(path, map_location="cpu", weights_only=True)
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


# torch's messages when weights_only meets what it does not allow (rather than a damaged file): a global
# ("GLOBAL posix.system was not an allowed global"), or an object to build or call ("but got <class '...'>").
_REFUSED = re.compile(
    r"GLOBAL (?P<name>[\w.]+)"
    r"|(?:Can only build|Can only create new object|Trying to call reduce)[^<]*<(?P<object>[^>]+)>"
)


def _allowed_globals() -> list:
    """What checkpoints of rl_games and of this project's earlier releases hold beyond tensors and plain Python:
    the mean reward as a numpy scalar, pickled under numpy 2's or numpy 1's module names."""
    scalar = np.core.multiarray.scalar if not hasattr(np, "_core") else np._core.multiarray.scalar
    dtypes = [np.dtype, *{type(np.dtype(code)) for code in ("f4", "f8")}]
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) < (2, 6):  # no (object, name) pairs before
        return [*dtypes, scalar]
    names = ("numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar")
    return [*dtypes, *((scalar, name) for name in names)]


def open_checkpoint(path: Path, task_name: str, network: dict | None = None) -> dict:
    """A checkpoint as data (load_checkpoint), refused in one line if it is of another task or, given the
    state_dict of the network built for this run, if its weights do not fit it. Play and resume open
    checkpoints through here."""
    state = load_checkpoint(path)
    check_task(state, task_name, path)
    if network is not None:
        check_network(state["model"], network, path, task_name)
    return state


def check_task(state: dict, task_name: str, path: Path) -> None:
    """Refuse a checkpoint whose env_state names another task."""
    trained_on = (state.get("env_state") or {}).get("task")
    if trained_on is not None and trained_on != task_name:
        raise UserError(f"{path} is a checkpoint of task {trained_on}, not {task_name}; use task={trained_on}")


def check_network(saved: dict, built: dict, path: Path, task_name: str) -> None:
    """Refuse, in one line, weights that do not fit the network the config builds."""
    obs_key, act_key = "running_mean_std.running_mean", "a2c_network.mu.weight"
    if obs_key in saved and act_key in saved and obs_key in built:
        saved_io = (saved[obs_key].shape[0], saved[act_key].shape[0])
        built_io = (built[obs_key].shape[0], built[act_key].shape[0])
        if saved_io != built_io:
            raise UserError(
                f"{path} was trained with {saved_io[0]} observations and {saved_io[1]} actions, but task {task_name} "
                f"has {built_io[0]} and {built_io[1]}: it is a checkpoint of another task"
            )
    for key in sorted(set(saved) | set(built)):
        if key not in saved or key not in built or saved[key].shape != built[key].shape:
            have = tuple(saved[key].shape) if key in saved else "nothing"
            want = tuple(built[key].shape) if key in built else "nothing"
            raise UserError(
                f"{path} does not fit the network of the config: {key} is {have} in the checkpoint, {want} in the "
                f"network (train.params.network differs from the one it was trained with)"
            )
