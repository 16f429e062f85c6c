"""The physics engines a run can use, and all that is engine-specific: add an engine here and nowhere else.

Imported by the entry points before torch (Isaac Gym must load first), so it imports nothing heavy itself and
must run on Python 3.8 (Isaac Gym's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    load: Callable[[], None]  # what must be imported before torch, if anything
    make_env: Callable[[Any], Any]  # the vectorized env of a resolved config
    renders_video: bool  # play.py video=True (MuJoCo Warp's renderer)


def _no_early_import() -> None:
    pass


def _make_mjwarp_env(cfg):
    from harness.tasks import make_mjwarp_env

    return make_mjwarp_env(cfg)


def _load_isaacgym() -> None:
    from harness.sim.physx import import_isaacgym

    import_isaacgym()


def _make_physx_env(cfg):
    from harness.sim.physx import make_physx_env

    return make_physx_env(cfg)


ENGINES = {
    "mjwarp": Engine("mjwarp", "MuJoCo Warp (the default)", _no_early_import, _make_mjwarp_env, renders_video=True),
    "physx": Engine(
        "physx", "Isaac Gym's PhysX, where installed", _load_isaacgym, _make_physx_env, renders_video=False
    ),
}


def get_engine(name: str) -> Engine:
    """The engine `physics_engine=name` asks for; one line listing the engines otherwise."""
    if name not in ENGINES:
        known = ", ".join(f"{engine.name} ({engine.description})" for engine in ENGINES.values())
        raise UserError(f"physics_engine={name} is unknown; use one of: {known}")
    return ENGINES[name]
