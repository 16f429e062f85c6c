"""Play: resolve a checkpoint, rebuild its run's task and network, roll out the deterministic policy, report."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path

import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from harness.checkpoints import (
    Checkpoint,
    check_network,
    open_checkpoint,
    periodic_epoch_and_reward,
    resolve_checkpoint,
)
from harness.config import fixed_sigma, given_on_command_line, prepare_config, whole_number
from harness.console import episode_progress, rl_games_output
from harness.engines import get_engine
from harness.errors import UserError
from harness.rl.seam import Runner
from harness.runs import RUNS_DIR, RunFolder, experiment_name, write_text_atomic
from harness.tasks import make_env

# Command-line keys that choose what to play rather than how (task= and train= pick config groups): they are
# not applied to the run's config; dotted keys such as task.env.numEnvs are.
_SELECTION_KEYS = {"task", "train", "checkpoint", "test", "experiment"}


def run_play(cfg: DictConfig) -> dict:
    """Play the checkpoint `cfg.checkpoint` names and print and save a report; returns the report."""
    with rl_games_output(shown=cfg.verbose):
        return _play(cfg)


def _play(cfg: DictConfig) -> dict:
    for key in ("num_episodes", "video_length"):
        if not whole_number(cfg[key]):
            raise UserError(f"{key} must be a whole number >= 1, got {cfg[key]!r}")
    if cfg.export not in ("", "onnx", "jit"):
        raise UserError(f"export={cfg.export} is unknown; use export=onnx or export=jit")
    choice = resolve_checkpoint(cfg.checkpoint or "auto", RUNS_DIR, experiment_name(cfg))
    run = _run_of(choice.path)
    cfg = prepare_config(_run_config(cfg, run))
    state = open_checkpoint(choice.path, cfg.task_name)
    if cfg.video and not get_engine(cfg.physics_engine).renders_video:
        raise UserError(
            "video=True renders with MuJoCo Warp: use physics_engine=mjwarp, or Isaac Gym's own capture_video"
        )
    task = make_env(cfg)
    player = build_player(cfg, task, state, choice.path)
    _print_choice(choice, state, cfg)
    with episode_progress(cfg.num_episodes) as advance:
        record_steps = cfg.video_length if cfg.video else 0
        summary, poses = rollout(task, player, cfg.num_episodes, cfg.deterministic, record_steps, on_progress=advance)
    report = {"checkpoint": str(choice.path), "epoch": state.get("epoch"), **summary}
    report.update(
        task=cfg.task_name,
        num_envs=task.num_envs,
        sim_device=cfg.sim_device,
        rl_device=cfg.rl_device,
        deterministic=cfg.deterministic,
    )
    out = _output_run(run, cfg)
    try:
        report["report"] = str(_write_report(report, out, choice.path))
    except OSError as error:
        print_report({**report, "report": "nothing (see below)"})
        raise UserError(_cannot_write(error)) from None
    print_report(report)
    try:
        stems = {"report_stem": Path(report["report"]).stem, "stem": choice.path.stem}
        _write_video_and_export(cfg, task, player, poses, out=out, **stems)
    except OSError as error:
        raise UserError(_cannot_write(error)) from None
    return report


def _write_video_and_export(cfg: DictConfig, task, player, poses, *, out: RunFolder, report_stem: str, stem: str):
    if cfg.video:
        from harness.video import steps_per_second, write_video

        fps = steps_per_second(cfg.task)
        path = out.videos / f"{report_stem}.mp4"
        print(f"Video of env 0 ({len(poses)} steps): {write_video(task.sim.mj_model, poses, fps, path)}")
    if cfg.export:
        from harness.export import export_policy

        path = export_policy(player.model, task.num_obs, cfg.export, out.exported, stem)
        print(f"Exported the policy ({cfg.export}) to {path}")


def _cannot_write(error: OSError) -> str:
    return f"cannot write {error.filename}: {error.strerror}; free space or fix permissions, then play again"


def _run_of(checkpoint: Path) -> RunFolder:
    """The run folder of a checkpoint: the one its nn/ is in, else (a file given elsewhere) the folder it is in."""
    return RunFolder.of_checkpoint(checkpoint) or RunFolder(checkpoint.parent.name, checkpoint.parent.parent)


def _output_run(run: RunFolder, cfg: DictConfig) -> RunFolder:
    """Where play writes: the checkpoint's run folder if it is one under runs/, else runs/<experiment>/; never
    beside a checkpoint from elsewhere."""
    if run.root.resolve() == RUNS_DIR.resolve():
        return run
    return RunFolder(experiment_name(cfg))


def _run_config(cfg: DictConfig, run: RunFolder) -> DictConfig:
    """The run's own config.yaml with this command line's overrides on top (the composed config if none)."""
    saved = run.config_file
    if not saved.is_file():
        print(f"{saved} not found: using the config of this command line.")
        return cfg
    run_cfg = OmegaConf.load(saved)
    if cfg.task_name != run_cfg.task_name and given_on_command_line("task"):
        raise UserError(f"{run.path} is a run of task {run_cfg.task_name}, not task={cfg.task_name}")
    for key in ("num_episodes", "deterministic", "video", "video_length", "export", "checkpoint", "test", "multi_gpu"):
        run_cfg[key] = cfg[key]
    for override in HydraConfig.get().overrides.task if HydraConfig.initialized() else []:
        key, _, value = override.lstrip("+").partition("=")
        if key not in _SELECTION_KEYS:
            OmegaConf.update(run_cfg, key, yaml.safe_load(value) if value else "", force_add=True)
    if given_on_command_line("num_envs"):
        run_cfg.task.env.numEnvs = run_cfg.train.params.config.num_actors = cfg.num_envs
    return run_cfg


def build_player(cfg: DictConfig, task, state: dict, path: Path):
    """rl_games' own continuous PPO player, built from the run's train config, with the checkpoint's weights."""
    params = OmegaConf.to_container(cfg.train.params, resolve=True)
    env_info = {"observation_space": task.observation_space, "action_space": task.action_space, "agents": 1}
    params["config"].update(env_info=env_info, vec_env=None, device_name=cfg.rl_device)
    params["config"]["player"] = {
        "deterministic": cfg.deterministic,
        "games_num": cfg.num_episodes,
        "print_stats": False,
    }
    runner = Runner()
    runner.load({"params": params})
    player = runner.create_player()
    player.has_batch_dimension = True
    check_network(state["model"], player.model.state_dict(), path, cfg.task_name)
    player.model.load_state_dict(state["model"])
    sigma = fixed_sigma(cfg)
    if sigma is not None:  # IsaacGymEnvs' sigma= (checked in prepare_config: the network has a fixed sigma)
        with torch.no_grad():
            player.model.a2c_network.sigma.fill_(sigma)
    return player


def _print_choice(choice: Checkpoint, state: dict, cfg: DictConfig) -> None:
    named = periodic_epoch_and_reward(choice.path)
    reward = float(named[1] if named else state.get("last_mean_rewards", math.nan))
    reward_text = f", mean reward {reward:.2f}" if math.isfinite(reward) else ""
    print(
        f"Playing {choice.path}: {choice.reason} (epoch {state.get('epoch', '?')}{reward_text}); "
        f"{cfg.task.env.numEnvs} envs on {cfg.sim_device}"
    )


class EpisodeTally:
    """Returns and lengths of episodes fixed in advance: env 0's first, env 1's first, ..., then second ones.

    Fixing them in advance means short episodes are not favoured over long ones. Updates stay on the device.
    """

    def __init__(self, num_envs: int, num_episodes: int, device: torch.device) -> None:
        self.rounds = math.ceil(num_episodes / num_envs)
        self.need = torch.full((num_envs,), self.rounds, device=device)
        self.need[num_episodes - (self.rounds - 1) * num_envs :] -= 1
        self.returns = torch.zeros(self.rounds, num_envs, device=device)
        self.lengths = torch.zeros(self.rounds, num_envs, device=device)
        self.finished = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.episode_return = torch.zeros(num_envs, device=device)
        self.episode_length = torch.zeros(num_envs, device=device)
        self.envs = torch.arange(num_envs, device=device)

    def update(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        self.episode_return += reward
        self.episode_length += 1
        record = done & (self.finished < self.need)
        slot = self.finished.clamp(max=self.rounds - 1)
        self.returns[slot, self.envs] = torch.where(record, self.episode_return, self.returns[slot, self.envs])
        self.lengths[slot, self.envs] = torch.where(record, self.episode_length, self.lengths[slot, self.envs])
        self.finished += record
        self.episode_return.masked_fill_(done, 0.0)
        self.episode_length.masked_fill_(done, 0.0)

    def ended(self) -> int:
        """How many of the counted episodes have ended (a host sync)."""
        return int(torch.minimum(self.finished, self.need).sum())

    def summary(self) -> dict:
        counted = torch.arange(self.rounds, device=self.need.device)[:, None] < self.need[None, :]
        returns, lengths = self.returns[counted].double(), self.lengths[counted].double()
        return {
            "episodes": int(returns.numel()),
            "return_mean": returns.mean().item(),
            "return_std": returns.std(unbiased=False).item(),
            "length_mean": lengths.mean().item(),
            "returns": returns.tolist(),
            "lengths": [int(n) for n in lengths.tolist()],  # under the time limit: ended early (fell, or succeeded)
        }


def rollout(task, player, num_episodes: int, deterministic: bool = True, record_steps: int = 0, *, on_progress=None):
    """Run the policy until `num_episodes` counted episodes have ended; the summary, and env 0's poses.

    Env 0's poses (`record_steps` at most) are kept on the device for a video. Host syncs: one every 50 steps,
    which also tells `on_progress` how many counted episodes have ended.
    """
    tally = EpisodeTally(task.num_envs, num_episodes, player.device)
    poses = torch.zeros(record_steps, task.sim.qpos.shape[1], device=task.device) if record_steps else None
    obs = task.reset()["obs"]
    start, steps = time.perf_counter(), 0
    while True:
        obs_dict, reward, done, _ = task.step(player.get_action(obs, is_deterministic=deterministic))
        obs = obs_dict["obs"]
        if steps < record_steps:
            poses[steps] = task.sim.qpos[0]
        steps += 1
        tally.update(reward, done)
        if steps % 50 == 0:
            ended = tally.ended()
            if on_progress is not None:
                on_progress(ended)
            if ended >= num_episodes:
                break
    seconds = time.perf_counter() - start
    summary = {**tally.summary(), "env_steps_per_s": steps * task.num_envs / seconds}
    return summary, poses[: min(steps, record_steps)] if record_steps else None


def _write_report(report: dict, run: RunFolder, checkpoint: Path) -> Path:
    folder = run.plays
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"{checkpoint.stem}_{stamp}.json"
    suffix = 1
    while path.exists():  # two plays in one second: never overwrite a report
        path, suffix = folder / f"{checkpoint.stem}_{stamp}_{suffix}.json", suffix + 1
    write_text_atomic(path, json.dumps({**report, "report": str(path)}, indent=2) + "\n")
    return path


def print_report(report: dict) -> None:
    """The play report, a few aligned lines."""
    print(
        f"\nPlay report: {report['task']}, {report['checkpoint']} (epoch {report['epoch']})\n"
        f"  episodes          {report['episodes']}\n"
        f"  return            {report['return_mean']:.2f} mean, {report['return_std']:.2f} std\n"
        f"  episode length    {report['length_mean']:.1f} mean\n"
        f"  inference         {report['env_steps_per_s']:,.0f} env steps/s "
        f"({report['num_envs']} envs, {'deterministic' if report['deterministic'] else 'stochastic'} policy "
        f"on {report['rl_device']})\n"
        f"  written to        {report['report']}"
    )
