"""physics_engine=physx, checked against a test double of the VecTask contract (tests/isaacgym_double: not Isaac
Gym, which no registry serves); the missing-install message; Python 3.8 compatibility is vermin's job in .ci/run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from conftest import CPU, ROOT, run_script

DOUBLE = ROOT / "tests" / "isaacgym_double"


def run_with_double(script: str, *args: str, cwd, log) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(DOUBLE), "ISAACGYM_DOUBLE_LOG": str(log)}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_train_and_play_build_the_env_with_isaacgymenvs_make(tmp_path):
    log = tmp_path / "make.json"
    args = [
        "task=Ant",
        "physics_engine=physx",
        "num_envs=16",
        *CPU,
        "max_iterations=3",
        "seed=5",
        "headless=True",
        "train.params.config.save_best_after=1",
        "train.params.config.save_frequency=1",
    ]
    result = run_with_double("train.py", *args, cwd=tmp_path, log=log)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert json.loads(log.read_text()) == {
        "seed": 5,
        "task": "Ant",
        "num_envs": 16,
        "sim_device": "cpu",
        "rl_device": "cpu",
        "graphics_device_id": 0,
        "headless": True,
        "multi_gpu": False,
        "virtual_screen_capture": False,
        "force_render": True,
        "cfg_task_name": "Ant",
        "cfg_physx_block": True,
    }
    nn = tmp_path / "runs" / "Ant" / "nn"
    assert (nn / "Ant.pth").is_file() and "MuJoCo Warp" not in result.stdout
    state = torch.load(nn / "Ant.pth", weights_only=False)
    assert state["env_state"] == {"task": "Ant"} and state["model"]["a2c_network.mu.weight"].shape == (3, 64)
    # Episodes of the double end by time-out after 10 steps with reward 1: rl_games saw them end.
    assert float(state["last_mean_rewards"]) == 10.0
    played = run_with_double(
        "play.py",
        "task=Ant",
        "physics_engine=physx",
        "checkpoint=auto",
        "num_envs=4",
        *CPU,
        "num_episodes=4",
        cwd=tmp_path,
        log=log,
    )
    assert played.returncode == 0, played.stderr[-2000:]
    assert "return            10.00 mean" in played.stdout


def test_time_outs_reach_rl_games_unchanged():
    sys.path.insert(0, str(DOUBLE))
    try:
        from isaacgymenvs import DoubleVecTask
    finally:
        sys.path.remove(str(DOUBLE))
    from harness.rl.agent import RlGamesVecEnv, register_env

    register_env(lambda: DoubleVecTask({"name": "Ant"}, 4, "cpu"))
    env = RlGamesVecEnv("rlgpu", 4)
    env.reset()
    for _ in range(10):
        _, _, done, infos = env.step(torch.zeros(4, 3))
    assert done.all() and infos["time_outs"].all(), "the tenth step times every episode out"
    assert env.get_env_info()["observation_space"].shape == (6,)


def test_without_isaac_gym_physx_is_a_clear_error(tmp_path):
    result = run_script("train.py", "physics_engine=physx", *CPU, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "physics_engine=physx needs Isaac Gym, which is not installed" in result.stderr
    assert "pip install -e python/" in result.stderr and not (tmp_path / "runs").exists()


def test_the_physx_path_imports_neither_warp_nor_mujoco():
    code = (
        "import sys; import harness.training, harness.play, harness.sim.physx; "
        "print(sorted(m for m in ('warp', 'mujoco', 'mujoco_warp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
