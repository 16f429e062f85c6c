"""The seam to rl_games: what of rl_games this project relies on, for the versions it supports.

Users' train YAMLs and checkpoints are rl_games', so rl_games stays the agent: its Runner, its continuous PPO
(losses, dataset, schedules, logging) and its checkpoint layout. The project's fast path replaces some of the
agent's methods (REPLACED) and reads or sets some of its attributes (USED). Every module imports rl_games
through here, so an rl_games upgrade touches this file: read its changes against both lists, run
`tests/test_seam.py` (it fails when a replaced method or a used attribute is gone) and add the version.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from importlib import metadata
from pathlib import Path

from harness.errors import UserError

SUPPORTED_VERSIONS = ("1.6.5",)
# rl_games registers its own test networks whenever its env configurations are imported, and one of them has a
# method decorated with torch.compile, which imports TorchInductor: about 1.1 s of every start on the CPU
# (2026-11-26). defer_test_networks() loads that module when one of its networks is first built instead.
TEST_NETWORKS = "rl_games.envs.test_network"
TEST_NETWORK_BUILDERS = ("TestNetBuilder", "TestNetAuxLossBuilder", "SimpleNetBuilder")


def check_version() -> None:
    """One line, not a traceback, when the installed rl_games is not one this project was built against."""
    try:
        installed = metadata.version("rl-games")
    except metadata.PackageNotFoundError:
        installed = None
    if installed not in SUPPORTED_VERSIONS:
        found = f"rl_games {installed} is installed" if installed else "rl_games is not installed"
        raise UserError(
            f"{found}; this harness supports rl-games {', '.join(SUPPORTED_VERSIONS)}: pip install -r requirements.txt"
        )


def defer_test_networks() -> None:
    """Stand in for rl_games' test-network module until one of its builders is called: each stand-in builder
    loads the real module then (under its own name) and returns the real builder."""
    if TEST_NETWORKS in sys.modules:
        return
    package = importlib.util.find_spec("rl_games")  # (finding a top-level package imports nothing)
    source = Path(package.origin).parent / "envs" / "test_network.py"

    def real_module() -> types.ModuleType:
        module = sys.modules[TEST_NETWORKS]
        if module is stand_in:
            spec = importlib.util.spec_from_file_location(TEST_NETWORKS, source)
            module = importlib.util.module_from_spec(spec)
            sys.modules[TEST_NETWORKS] = module
            spec.loader.exec_module(module)
        return module

    def builder(name: str) -> type:
        return type(name, (), {"__new__": lambda cls, *args, **kwargs: getattr(real_module(), name)(*args, **kwargs)})

    stand_in = types.ModuleType(TEST_NETWORKS)
    for name in TEST_NETWORK_BUILDERS:
        setattr(stand_in, name, builder(name))
    sys.modules[TEST_NETWORKS] = stand_in


check_version()
defer_test_networks()

# ruff: noqa: E402 (the version is checked before rl_games is imported)
from rl_games.algos_torch import torch_ext
from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.algos_torch.models import ModelA2CContinuousLogStd
from rl_games.common import env_configurations, vecenv
from rl_games.common.a2c_common import A2CBase, swap_and_flatten01
from rl_games.common.algo_observer import AlgoObserver
from rl_games.common.diagnostics import DefaultDiagnostics
from rl_games.common.ivecenv import IVecEnv
from rl_games.common.schedulers import AdaptiveScheduler
from rl_games.common.tr_helpers import DefaultRewardsShaper
from rl_games.torch_runner import Runner

__all__ = [
    "A2CAgent",
    "A2CBase",
    "AdaptiveScheduler",
    "AlgoObserver",
    "DefaultDiagnostics",
    "DefaultRewardsShaper",
    "IVecEnv",
    "ModelA2CContinuousLogStd",
    "Runner",
    "env_configurations",
    "swap_and_flatten01",
    "torch_ext",
    "vecenv",
]

# Methods of rl_games' A2CAgent that harness.rl.agent.HarnessAgent replaces, and by what. Should rl_games rename
# one, the replacement would silently never run: tests/test_seam.py checks that each still exists there.
REPLACED = {
    "train": "train_loop.TrainLoop: the epoch loop, for one process or several ranks",
    "train_epoch": "update.SyncFreeUpdate: the update without a host sync per minibatch, a CUDA graph a step",
    "trancate_gradients_and_step": "update.SyncFreeUpdate: gradients averaged over ranks in one flat all-reduce",
    "get_full_state_weights": "update.SyncFreeUpdate: the learning rate saved as a plain number",
    "set_full_state_weights": "update.SyncFreeUpdate: the learning rate back on the device",
    "calc_gradients": "update.SyncFreeUpdate: the PPO loss and its backward pass as one kernel (ppo_loss)",
    "play_steps": "rollout.SyncFreeRollout: the rollout without a host sync per step",
    "get_action_values": "rollout.SyncFreeRollout: action sampling as a CUDA graph",
    "save": "agent.HarnessAgent: atomic, plain-data checkpoints with the episodes in progress",
    "restore": "agent.HarnessAgent: checked, data-only loading; the best reward the run reached",
}

# Attributes and methods of rl_games' agent that this project's code reads, sets or calls, beyond REPLACED.
USED = [
    "_preproc_obs",
    "algo_observer",
    "batch_size",
    "batch_size_envs",
    "bound_loss_type",
    "bounds_loss_coef",
    "cast_obs",
    "clip_value",
    "config",
    "critic_coef",
    "curr_frames",
    "current_lengths",
    "current_rewards",
    "current_shaped_rewards",
    "dataset",
    "diagnostics",
    "discount_values",
    "dones",
    "e_clip",
    "entropy_coef",
    "env_reset",
    "env_step",
    "epoch_num",
    "experience_buffer",
    "frame",
    "game_lengths",
    "game_rewards",
    "game_shaped_rewards",
    "gamma",
    "grad_norm",
    "has_central_value",
    "has_value_loss",
    "horizon_length",
    "init_tensors",
    "is_rnn",
    "last_lr",
    "last_mean_rewards",
    "max_epochs",
    "max_frames",
    "mean_rewards",
    "mini_epochs_num",
    "mixed_precision",
    "model",
    "multi_gpu",
    "nn_dir",
    "normalize_input",
    "num_agents",
    "obs",
    "obs_to_tensors",
    "optimizer",
    "ppo",
    "ppo_device",
    "prepare_dataset",
    "rewards_shaper",
    "rnn_states",
    "save_best_after",
    "save_freq",
    "scaler",
    "schedule_type",
    "scheduler",
    "set_eval",
    "set_train",
    "tensor_list",
    "train_result",
    "truncate_grads",
    "update_epoch",
    "update_list",
    "use_action_masks",
    "value_bootstrap",
    "value_size",
    "vec_env",
    "writer",
]

# Attributes of rl_games' DefaultRewardsShaper (the agent's rewards_shaper) that harness.rl.step_records reads, where
# it shapes the rewards in its kernel instead of calling the shaper.
SHAPER_USED = ["is_torch", "log_val", "max_val", "min_val", "scale_value", "shift_value"]
