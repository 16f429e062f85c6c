"""IsaacGymEnvs' config resolvers, registered under its names; no torch here (Isaac Gym must be imported first)."""

from __future__ import annotations

from omegaconf import OmegaConf


def register_resolvers() -> None:
    """Register the resolvers that IsaacGymEnvs' YAML files use, under the same names."""
    resolvers = {
        "eq": lambda x, y: str(x).lower() == str(y).lower(),
        "contains": lambda needle, haystack: str(needle).lower() in str(haystack).lower(),
        "if": lambda pred, a, b: a if pred else b,
        "resolve_default": lambda default, arg: default if arg == "" else arg,
    }
    for name, resolver in resolvers.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)
