"""Checkpoint files: atomic writes and rl_games' file names."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import torch

# rl_games names its end-of-training file last_<name>_ep_<N>_rew__<R>_ (a printed array); use the periodic form.
_ARRAY_REWARD = re.compile(r"_rew__\[?(?P<reward>[^\]_]*)\]?_$")


def checkpoint_path(stem: str) -> Path:
    """The .pth path for an rl_games checkpoint stem, with the reward written as in periodic checkpoints."""
    return Path(_ARRAY_REWARD.sub(r"_rew_\g<reward>", stem) + ".pth")


def save_atomic(state: dict, path: Path) -> None:
    """Write `state` to `path` so that a crash at any moment leaves either the old file or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; checkpoints get the usual mode
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def strip_compile_prefix(state_dict: dict) -> dict:
    """Drop the `_orig_mod.` prefix torch.compile adds, so plain rl_games can load the weights."""
    return {key.replace("_orig_mod.", ""): value for key, value in state_dict.items()}
