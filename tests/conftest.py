"""Shared helpers: compose the project's Hydra config, build small CPU tasks, run the real scripts."""

from __future__ import annotations

import io
import os
import runpy
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CPU = ["sim_device=cpu", "rl_device=cpu"]
# A test's device parameter for cuda:0: marked cuda (deselected by default) and skipped where no GPU is.
CUDA = pytest.param(
    "cuda:0",
    marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")],
)


@pytest.fixture(scope="session", autouse=True)
def resolvers():
    from harness.resolvers import register_resolvers

    register_resolvers()


def compose_config(*overrides: str, config_dir: Path = ROOT / "cfg"):
    """The config train.py would see for these command-line overrides."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def make_cpu_task(task: str, num_envs: int, *overrides: str):
    """A resolved task of this name on the CPU, as train.py would build it."""
    from harness.config import prepare_config
    from harness.tasks import make_task

    cfg = prepare_config(compose_config(f"task={task}", f"num_envs={num_envs}", *CPU, *overrides))
    return make_task(OmegaConf.to_container(cfg.task, resolve=True), "cpu", "cpu")


def make_cpu_agent(*overrides: str, seed: int = 0):
    """train.py's rl_games agent (HarnessAgent) on the CPU; see make_agent."""
    return make_agent(*overrides, *CPU, seed=seed)


def make_agent(*overrides: str, seed: int = 0):
    """train.py's rl_games agent (HarnessAgent), set up as its train() does: the process group joined (with
    multi_gpu=True under torchrun), tensors made, envs reset; torch seeded with `seed` before the agent and its
    envs are built. It writes its run folder under the current directory."""
    from harness import distributed
    from harness.config import prepare_config
    from harness.rl.progress import ProgressObserver
    from harness.rl.trainer import build_trainer, create_agent, rl_games_params

    cfg = prepare_config(compose_config(*overrides))
    if cfg.multi_gpu and not distributed.active():
        distributed.init_process_group(cfg.rl_device)
    runner = build_trainer(cfg, rl_games_params(cfg, cfg.task_name), [ProgressObserver()])
    torch.manual_seed(seed)
    return create_agent(runner)


def gpu_twin_under_way(task, steps: int = 30):
    """`task` (on the CPU) stepped `steps` times with seeded random actions, and the same task built on cuda:0 from its
    saved state: to compare the task's kernels on the GPU with the CPU's from one state."""
    from harness.tasks import make_task

    generator = torch.Generator().manual_seed(3)
    task.reset()
    for _ in range(steps):
        task.step(torch.rand(task.num_envs, task.num_actions, generator=generator) * 2 - 1)
    gpu = make_task(task.cfg, "cuda:0", "cuda:0")
    assert gpu.set_state(task.get_state())
    return gpu


def make_ant(num_envs: int = 8, *overrides: str):
    """A resolved Ant task on the CPU."""
    return make_cpu_task("Ant", num_envs, *overrides)


def run_script(
    script: str, *args: str, cwd: Path, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run one of the project's entry points as a user would, from `cwd` (in `env`, else this environment)."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def torchrun(*args: str, cwd, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`torchrun ARGS` from `cwd`, in this environment plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


def run_in_process(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run train.py or play.py as `python <script> ARGS` from `cwd` would, but in this process: the script's own
    module from the command line on (Hydra's parsing, the one-line errors, the exit code), with its output captured,
    without the 5-9 s a new process spends importing and loading MuJoCo Warp's kernels. What only a new process
    shows (start-up, signals, several processes, the environment it is given) is tested with run_script."""
    from hydra.core.global_hydra import GlobalHydra

    stdout, stderr = io.StringIO(), io.StringIO()
    command = [str(ROOT / script), *args]
    saved_cwd, saved_argv, saved_env = os.getcwd(), sys.argv, dict(os.environ)
    returncode = 0
    try:
        os.chdir(cwd)
        sys.argv = list(command)
        with redirect_stdout(stdout), redirect_stderr(stderr):
            try:
                runpy.run_path(str(ROOT / script), run_name="__main__")
            except SystemExit as exit:  # as the interpreter would end: a message goes to stderr with status 1
                if isinstance(exit.code, str):
                    print(exit.code, file=sys.stderr)
                returncode = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        GlobalHydra.instance().clear()
    return subprocess.CompletedProcess(command, returncode, stdout.getvalue(), stderr.getvalue())
