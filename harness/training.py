"""Training: config -> run folder -> task -> rl_games PPO."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from harness.config import global_rank, prepare_config
from harness.errors import UserError
from harness.progress import ProgressObserver
from harness.rlgames import build_runner, register_env
from harness.runs import RUNS_DIR, experiment_name, prepare_run_dir
from harness.tasks import make_task


def run_train(cfg: DictConfig) -> None:
    """Train the configured task with rl_games PPO, writing runs/<experiment>/ (or play, with test=True)."""
    if cfg.test:  # IsaacGymEnvs' habit: train.py test=True checkpoint=... plays instead of training
        from harness.play import run_play

        run_play(cfg)
        return
    cfg = prepare_config(cfg)
    checkpoint = _checkpoint_to_resume(cfg.checkpoint)
    experiment = experiment_name(cfg)
    # Write config.yaml before the runner exists: rl_games mutates the params it is given.
    if checkpoint is None:
        prepare_run_dir(cfg, experiment, write=global_rank() == 0)
    params = rl_games_params(cfg, experiment)
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    register_env(lambda: make_task(task_cfg, cfg.sim_device, cfg.rl_device))
    runner = build_runner(params, ProgressObserver())
    envs = cfg.task.env.numEnvs
    if global_rank() == 0:
        ranks = f" x {os.environ['WORLD_SIZE']} GPUs" if cfg.multi_gpu else ""
        print(f"Training {cfg.task_name}: {envs} envs{ranks} on {cfg.sim_device}, run folder {RUNS_DIR / experiment}")
    runner.run({"train": True, "play": False, "checkpoint": checkpoint, "sigma": cfg.sigma or None})


def rl_games_params(cfg: DictConfig, experiment: str) -> dict:
    """The train config's `params`, set for this harness: names, devices, run folder, our progress line."""
    params = OmegaConf.to_container(cfg.train.params, resolve=True)
    config = params["config"]
    config.update(name=experiment, full_experiment_name=experiment, train_dir=str(RUNS_DIR), device=cfg.rl_device)
    config["print_stats"] = False  # ProgressObserver prints one readable line per epoch instead
    # Off unless asked for: compiling costs start-up time, and on the CPU it needs a C++ toolchain.
    config.setdefault("torch_compile", False)
    if torch.device(cfg.rl_device).type == "cpu" and config.get("mixed_precision"):
        print("mixed_precision is a CUDA feature: training in float32 on the CPU.")
        config["mixed_precision"] = False
    _fit_minibatch(config)
    return params


def _fit_minibatch(config: dict) -> None:
    batch, minibatch = config["num_actors"] * config["horizon_length"], config["minibatch_size"]
    if minibatch > batch:
        print(f"minibatch_size {minibatch} exceeds the batch of {batch} (num_envs x horizon_length): using {batch}.")
        config["minibatch_size"] = minibatch = batch
    if batch % minibatch:
        raise UserError(
            f"minibatch_size {minibatch} does not divide the batch of {batch} (num_envs x horizon_length); "
            f"set train.params.config.minibatch_size to a divisor of {batch}"
        )


def _checkpoint_to_resume(checkpoint: str) -> str | None:
    if not checkpoint:
        return None
    if not Path(checkpoint).is_file():
        raise UserError(f"checkpoint={checkpoint} is not a file; give the path of a .pth checkpoint")
    return checkpoint
