"""Training: config -> run folder -> task -> rl_games PPO."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path

import torch
from omegaconf import DictConfig

from harness import distributed
from harness.checkpoints import latest_checkpoint, open_checkpoint, resolve_checkpoint
from harness.config import capture_video_settings, fixed_sigma, global_rank, prepare_config
from harness.console import rl_games_output
from harness.engines import get_engine
from harness.errors import UserError
from harness.rl.agent import NO_BEST, HarnessAgent
from harness.rl.progress import ProgressObserver
from harness.rl.train_loop import TrainingStopped
from harness.rl.trainer import build_trainer, rl_games_params
from harness.rl.training_video import TrainingVideo
from harness.runs import (
    RunFolder,
    RunLock,
    RunsBefore,
    append_config_history,
    experiment_name,
    prepare_run_dir,
    sweep_temporary_files,
)
from harness.tracking import wandb_run


def run_train(cfg: DictConfig) -> float | None:
    """Train the configured task with rl_games PPO, writing runs/<experiment>/ (or play, with test=True); the run's
    best mean reward."""
    if cfg.test:  # IsaacGymEnvs' habit: train.py test=True checkpoint=... plays instead of training
        from harness.play import run_play

        run_play(cfg)
        return None
    if cfg.multi_gpu:
        distributed.ranks_from_submitit()
    cfg = prepare_config(cfg)
    if cfg.multi_gpu:
        distributed.init_process_group(cfg.rl_device)
    try:
        with rl_games_output(shown=cfg.verbose):
            return _train(cfg)
    finally:
        distributed.close_process_group()


def _train(cfg: DictConfig) -> float | None:
    """Train; the best mean reward the run reached (None before any episode ended), which Hydra's sweepers read."""
    run = RunFolder(experiment_name(cfg))
    # Everything that can be checked is checked before anything is written.
    checkpoint, resumed_epoch = checkpoint_to_resume(cfg.checkpoint, run, cfg.task_name)
    params = rl_games_params(cfg, run.experiment)  # fits cfg to the device first: the config written is what runs
    run_dir = run.path
    before = RunsBefore(runs_existed=run.root.exists(), run_existed=run_dir.exists())
    lock = RunLock(run_dir)
    if global_rank() == 0:  # one training process per run folder; what a killed one half-wrote goes
        lock.acquire()
        sweep_temporary_files(run_dir)
    observer = ProgressObserver()
    try:
        if checkpoint is not None:  # (after the lock: a live run says it is in use first)
            _refuse_a_resume_past_the_end(checkpoint, resumed_epoch, cfg.train.params.config.get("max_epochs", -1))
        return _start_and_train(cfg, run, checkpoint, params, observer)
    except Exception as error:
        if global_rank() == 0 and not observer.steps_per_s:  # failed before its first epoch: leave runs/ as it was
            before.restore(run_dir)
        if _out_of_memory(error):
            where = "starting" if not observer.steps_per_s else "training (the checkpoints on disk are intact)"
            raise UserError(
                f"out of memory on {cfg.sim_device} while {where} {cfg.task.env.numEnvs} envs: use fewer "
                f"(num_envs=...); {error}".splitlines()[0]
            ) from None
        raise
    finally:
        lock.release()


def _refuse_a_resume_past_the_end(checkpoint: Path, epoch: int, max_epochs: int) -> None:
    """rl_games would train one epoch past max_iterations (and the progress line count negative time left); its
    max_epochs -1 means no end."""
    if max_epochs != -1 and epoch >= max_epochs:
        raise UserError(
            f"{checkpoint} is at epoch {epoch}, and this run ends at epoch {max_epochs}: nothing to train; "
            f"set max_iterations above {epoch} to train on"
        )


def _out_of_memory(error: Exception) -> bool:
    """torch's CUDA and CPU allocators, and Warp's, each say it their own way."""
    said = str(error).lower()
    return isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)) or any(
        words in said for words in ("out of memory", "can't allocate memory", "failed to allocate")
    )


def _start_and_train(cfg: DictConfig, run: RunFolder, checkpoint: Path | None, params: dict, observer) -> float | None:
    resuming_in_place = checkpoint is not None and run.holds(checkpoint)
    if resuming_in_place:
        append_config_history(cfg, run, write=global_rank() == 0)
    else:
        prepare_run_dir(cfg, run, write=global_rank() == 0)
    video = _training_video(cfg, run)
    runner = build_trainer(cfg, params, [observer, *filter(None, [video])])
    if global_rank() == 0:
        ranks = f" x {distributed.world_size()} ranks" if cfg.multi_gpu else ""
        envs = cfg.task.env.numEnvs
        print(f"Training {cfg.task_name}: {envs} envs{ranks} on {cfg.sim_device}, run folder {run.path}")
    tracking = wandb_run(cfg, run, resuming_in_place) if global_rank() == 0 else nullcontext()
    with stop_on_signals(), tracking, _closing(video):
        try:
            # rl_games writes sigma into the network once the checkpoint is restored, as in IsaacGymEnvs
            args = {"checkpoint": checkpoint and str(checkpoint), "sigma": fixed_sigma(cfg)}
            runner.run({"train": True, "play": False, **args})
        except TrainingStopped as stopped:
            if stopped.path is not None:  # rank 0 saved
                print(f"Training {stopped}: saved {stopped.path}; continue with checkpoint=auto", flush=True)
            sys.exit(128 + stopped.signum)
    if global_rank() == 0:
        say_how_it_ended(cfg, run, observer)
    best = max(float(observer.algo.last_mean_rewards), observer.best_mean_reward)  # (the first: before a resume too)
    return best if best > NO_BEST else None


def _training_video(cfg: DictConfig, run: RunFolder) -> TrainingVideo | None:
    """capture_video=True's observer (rank 0, and where the engine can render: MuJoCo Warp)."""
    settings = capture_video_settings(cfg)
    if settings is None or global_rank() != 0:
        return None
    if not get_engine(cfg.physics_engine).renders_video:
        print(f"capture_video=True renders with MuJoCo Warp: physics_engine={cfg.physics_engine} trains without videos")
        return None
    return TrainingVideo(*settings, run.videos, cfg.sim_device)


@contextmanager
def _closing(video: TrainingVideo | None) -> Iterator[None]:
    """The training's videos finish rendering before training returns, however it ends."""
    try:
        yield
    finally:
        if video is not None:
            for failed in video.close():
                print(f"capture_video: {failed}")


def say_how_it_ended(cfg: DictConfig, run: RunFolder, observer: ProgressObserver) -> None:
    """A finished run's last lines: its rewards, where its files are, and the command that plays it."""
    agent = observer.algo
    elapsed = timedelta(seconds=round(observer.last_time - observer.start_time))  # to the last epoch's end
    rewards = agent.game_rewards
    last = f"mean reward {rewards.get_mean()[0]:.2f} at the end" if rewards.current_size > 0 else "no episode ended"
    lines = [f"Training ended after epoch {agent.epoch_num} ({elapsed} this session): {last}"]
    lines.append(f"  run folder    {run.path}  (tensorboard --logdir {run.path / 'summaries'})")
    if run.best_checkpoint.is_file():
        lines.append(f"  best          {run.best_checkpoint}  (mean reward {agent.last_mean_rewards:.2f})")
    latest = latest_checkpoint(run)
    if latest is not None:
        lines.append(f"  latest        {latest}")
    experiment = f" experiment={run.experiment}" if run.experiment != cfg.task_name else ""
    lines.append(f"  play it       python play.py task={cfg.task_name}{experiment}")
    print("\n".join(lines), flush=True)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """On SIGINT or SIGTERM, finish the epoch, save a checkpoint and stop; a second SIGINT stops at once."""

    def request_stop(signum, frame) -> None:
        if HarnessAgent.stop_signal is not None and signum == signal.SIGINT:
            # Now, without unwinding: every checkpoint on disk is whole (atomic writes), and the lock goes with us.
            print("\nSecond Ctrl-C: quitting now, without saving this epoch", flush=True)
            os._exit(128 + signal.SIGINT)
        HarnessAgent.stop_signal = signum
        print(
            f"\n{signal.Signals(signum).name}: saving a checkpoint at the end of this epoch (Ctrl-C again to quit now)"
        )

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        HarnessAgent.stop_signal = None


def checkpoint_to_resume(spec: str, run: RunFolder, task_name: str) -> tuple[Path | None, int]:
    """The checkpoint a training run starts from (none, or what `checkpoint=` names) and its epoch (0 for none).

    `auto` resumes the run from its newest checkpoint by epoch if the run has any, else starts fresh.
    """
    if not spec:
        return None, 0
    nn, experiment = run.nn, run.experiment
    if spec == "auto":
        if not any(nn.glob("*.pth")):
            if global_rank() == 0:
                print(f"checkpoint=auto: no checkpoint in {nn}, starting a new run")
            return None, 0
        spec = "latest" if latest_checkpoint(run) is not None else "best"
    choice = resolve_checkpoint(spec, run.root, experiment)
    state = open_checkpoint(choice.path, task_name)  # a bad file is refused before anything is written
    if global_rank() == 0:
        print(f"Resuming from {choice.path}: {choice.reason}")
    return choice.path, state.get("epoch", 0)
