"""What the terminal shows: this project's lines, and rl_games' own console output only with verbose=True."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class _WithoutRlGames:
    """sys.stdout less what rl_games' own modules print (`self.seed = 42`, `build mlp: 60`, `RunningMeanStd: (60,)`,
    ...), which would bury the progress lines; everything else goes through as it is."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        printer = sys._getframe(1)  # whoever called print() (a builtin, so it has no frame of its own)
        if printer.f_globals.get("__name__", "").startswith("rl_games"):
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


@contextmanager
def rl_games_output(shown: bool) -> Iterator[None]:
    """Within this block rl_games' prints reach the terminal only if `shown` (the `verbose` key)."""
    if shown or isinstance(sys.stdout, _WithoutRlGames):
        yield
        return
    previous, sys.stdout = sys.stdout, _WithoutRlGames(sys.stdout)
    try:
        yield
    finally:
        sys.stdout = previous


@contextmanager
def episode_progress(total: int) -> Iterator:
    """A progress bar of play's episodes (ended of `total`, time elapsed and left); yields the function that
    moves it to a count. Drawn live on a terminal; in a log, its last state once at the end."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("episodes |"),
        TimeElapsedColumn(),
        TextColumn("elapsed,"),
        TimeRemainingColumn(),
        TextColumn("left"),
    )
    with Progress(*columns) as progress:
        bar = progress.add_task("play", total=total)
        yield lambda ended: progress.update(bar, completed=min(ended, total))
