"""Config handling: validation of the composed config, devices and seeding."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from harness.engines import get_engine
from harness.errors import UserError

# The top-level keys that switch something on or off: True or False, never a word that merely reads as true.
SWITCHES = (
    "torch_deterministic", "compile_task", "capture_rollout", "test", "multi_gpu", "wandb_activate", "capture_video",
    "force_render", "headless", "verbose", "deterministic", "video",
)  # fmt: skip
MAX_SEED = 2**31 - 1  # what seed=-1 draws below; NumPy takes seeds below 2**32, and each rank adds its rank


def prepare_config(cfg: DictConfig) -> DictConfig:
    """Check the composed config, pick devices and seed; return it fully resolved."""
    get_engine(cfg.physics_engine)  # a known engine
    _check_num_envs(cfg.num_envs)
    _check_switches_and_seed(cfg)
    if cfg.max_iterations != "" and not whole_number(cfg.max_iterations):
        raise UserError(f"max_iterations must be a whole number of epochs >= 1, got {cfg.max_iterations!r}")
    if cfg.multi_gpu:  # each rank on its own GPU (or, asked for with rl_device=cpu, CPU processes)
        on_cpu = str(cfg.rl_device) == "cpu"
        cfg.sim_device = cfg.rl_device = multi_gpu_device(dict(os.environ), torch.cuda.device_count(), on_cpu)
    asked = {key: cfg[key] for key in ("sim_device", "rl_device")}
    for key, device in asked.items():
        cfg[key] = choose_device(device, key)
    fell_back = [f"{key}={device}" for key, device in asked.items() if cfg[key] == "cpu" and device != "cpu"]
    if fell_back:
        print(f"No CUDA device found: running on the CPU instead of {' and '.join(fell_back)}.")
    # Ranks seed differently (seed + rank); the config keeps the base seed, to which rl_games adds the rank too.
    cfg.seed = set_seed(cfg.seed, cfg.torch_deterministic, offset=global_rank())
    try:
        OmegaConf.resolve(cfg)
    except Exception as error:  # omegaconf raises several types; all mean a bad value in the config
        raise UserError(f"the config does not resolve: {error}".splitlines()[0]) from None
    _check_num_envs(cfg.task.env.numEnvs)
    length = cfg.task.env.get("episodeLength")
    if length is not None and not whole_number(length):
        raise UserError(f"task.env.episodeLength must be a whole number of steps >= 1, got {length!r}")
    fixed_sigma(cfg)
    capture_video_settings(cfg)
    return cfg


def _check_switches_and_seed(cfg: DictConfig) -> None:
    for key in SWITCHES:
        if key in cfg and not isinstance(cfg[key], bool):
            raise UserError(f"{key} must be True or False, got {cfg[key]!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not -1 <= cfg.seed <= MAX_SEED:
        raise UserError(f"seed must be a whole number from 0 to {MAX_SEED}, or -1 to draw one; got {cfg.seed!r}")


def compose_config(overrides: list[str]) -> DictConfig:
    """train.py's config for these command-line overrides, prepared, for scripts that build tasks or agents
    without Hydra's entry point (the benchmarks)."""
    from hydra import compose, initialize_config_dir

    from harness.resolvers import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "cfg"), version_base="1.3"):
        return prepare_config(compose("config", overrides=overrides))


def fixed_sigma(cfg: DictConfig) -> float | None:
    """IsaacGymEnvs' `sigma`: a value written into the network's fixed `sigma` parameter once the checkpoint is
    loaded (for rl_games' continuous models, the log of the actions' standard deviation), for training and play;
    None when unset. Refused for a network that learns its sigma per observation (fixed_sigma: False)."""
    if cfg.sigma in ("", None):
        return None
    try:
        sigma = float(cfg.sigma)
    except (TypeError, ValueError):
        raise UserError(f"sigma={cfg.sigma!r} is not a number (the network's fixed log standard deviation)") from None
    continuous = OmegaConf.select(cfg, "train.params.network.space.continuous", default=None)
    if not continuous or not continuous.get("fixed_sigma", False):
        raise UserError(
            f"sigma={cfg.sigma} sets a fixed sigma, and {cfg.task_name}'s network learns its own "
            "(train.params.network.space.continuous.fixed_sigma is not True)"
        )
    return sigma


def capture_video_settings(cfg: DictConfig) -> tuple[int, int] | None:
    """capture_video=True's (capture_video_freq, capture_video_len) in env steps, checked; None when off."""
    if not cfg.capture_video:
        return None
    freq, length = cfg.capture_video_freq, cfg.capture_video_len
    for key, value in (("capture_video_freq", freq), ("capture_video_len", length)):
        if not whole_number(value):
            raise UserError(f"{key} must be a whole number of env steps >= 1, got {value!r}")
    return freq, length


def _check_num_envs(num_envs) -> None:
    if num_envs == "":
        return
    if not whole_number(num_envs):
        raise UserError(f"num_envs must be a whole number >= 1, got {num_envs!r}")


def whole_number(value) -> bool:
    """Whether a config value is a whole number >= 1 (a bool is not one, though Python counts it as an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def choose_device(device: str, key: str) -> str:
    """Validate a torch device string; a CUDA device from the config (not the command line) becomes cpu without CUDA."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"{key}={device} is not a device; use cuda:0, cuda:1, ... or cpu") from None
    if parsed.type == "cpu":
        return "cpu"
    if parsed.type != "cuda":
        raise UserError(f"{key}={device} is not supported; use cuda:N or cpu")
    if not torch.cuda.is_available():
        if given_on_command_line(key):
            raise UserError(f"{key}={device} was asked for, but this machine has no CUDA device; use {key}=cpu")
        return "cpu"  # the config's default device: prepare_config says so in one line
    index = 0 if parsed.index is None else parsed.index
    if index >= torch.cuda.device_count():
        raise UserError(f"{key}={device}, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return f"cuda:{index}"


def given_on_command_line(key: str) -> bool:
    """Whether this run's command line set `key` (as `key=`, `+key=` or `~key`)."""
    if not HydraConfig.initialized():
        return False
    return any(override.split("=", 1)[0].lstrip("+~") == key for override in HydraConfig.get().overrides.task)


def multi_gpu_device(env: dict, device_count: int, on_cpu: bool = False) -> str:
    """The device of this process in a torchrun launch: cuda:LOCAL_RANK, checked against the machine; or cpu."""
    if "LOCAL_RANK" not in env or "WORLD_SIZE" not in env:
        raise UserError(
            "multi_gpu=True needs torchrun's environment: "
            "torchrun --standalone --nproc_per_node=<GPUs> train.py ... multi_gpu=True"
        )
    if on_cpu:
        return "cpu"
    if device_count == 0:
        raise UserError(
            "multi_gpu=True needs CUDA GPUs, and this machine has none "
            "(for processes on the CPU, add sim_device=cpu rl_device=cpu)"
        )
    ranks_here = int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"]))
    if ranks_here > device_count:
        raise UserError(
            f"torchrun started {ranks_here} processes on this machine, which has {device_count} GPU(s); "
            f"use --nproc_per_node={device_count} or fewer"
        )
    return f"cuda:{int(env['LOCAL_RANK'])}"


def global_rank() -> int:
    """This process's rank in a torchrun launch (0 when there is none)."""
    return int(os.environ.get("RANK", "0"))


def set_seed(seed: int, torch_deterministic: bool = False, offset: int = 0) -> int:
    """Seed Python, NumPy and torch with seed + offset; seed -1 draws a random one. Returns the seed (no offset)."""
    if seed == -1:
        seed = random.SystemRandom().randrange(0, 2**31 - 1)
    random.seed(seed + offset)
    np.random.seed(seed + offset)
    torch.manual_seed(seed + offset)
    os.environ["PYTHONHASHSEED"] = str(seed + offset)
    if torch_deterministic:
        # cuBLAS needs this workspace setting to be deterministic.
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True)
    return seed
