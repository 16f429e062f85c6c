"""The real play.py end to end on the CPU: checkpoint=auto, the report, JSON, export; and its refusals. The first test
and the full disk run play.py as a new process; the others run its module in this one (conftest.run_in_process)."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import CPU, ROOT, run_in_process, run_script

PLAY = ["task=Ant", "checkpoint=auto", "num_envs=8", *CPU, "num_episodes=8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained run (episodes of 24 steps, so episodes end and checkpoints are written)."""
    workdir = tmp_path_factory.mktemp("play")
    train = [
        "task=Ant",
        "num_envs=32",
        "max_iterations=4",
        *CPU,
        "task.env.episodeLength=24",
        "train.params.config.save_best_after=1",
        "train.params.config.save_frequency=2",
    ]
    result = run_script("train.py", *train, cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    return workdir


def test_play_reports_and_writes_json(run):
    result = run_script("play.py", *PLAY, cwd=run)  # as a user runs it; the other tests run play.py in-process
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Playing runs/Ant/nn/Ant.pth: the best checkpoint of the run (epoch" in result.stdout
    assert "Play report: Ant" in result.stdout and "env steps/s" in result.stdout
    reports = list((run / "runs" / "Ant" / "play").glob("Ant_*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["episodes"] == 8 and len(report["returns"]) == 8 and report["num_envs"] == 8
    assert report["length_mean"] == pytest.approx(23.0), "episodes of the run's own config (episodeLength 24)"
    assert report["lengths"] == [23] * 8
    assert report["return_mean"] == pytest.approx(np.mean(report["returns"]))
    assert f"{report['return_mean']:.2f} mean" in result.stdout
    assert re.search(r"8/8 episodes \| [\d:]+ elapsed,", result.stdout), "the progress bar's last state"
    assert "RunningMeanStd" not in result.stdout and "build mlp" not in result.stdout


def test_train_py_test_true_plays_too(run):
    result = run_in_process("train.py", *PLAY, "test=True", "checkpoint=latest", "num_episodes=3", cwd=run)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the newest periodic checkpoint" in result.stdout and "episodes          3" in result.stdout


def test_video_shows_the_robot_moving(run):
    import imageio

    result = run_in_process("play.py", *PLAY, "num_episodes=2", "video=True", "video_length=30", cwd=run)
    assert result.returncode == 0, result.stderr[-2000:]
    videos = list((run / "runs" / "Ant" / "videos").glob("*.mp4"))
    assert len(videos) == 1 and f"Video of env 0 (30 steps): {videos[0].relative_to(run)}" in result.stdout
    frames = np.stack([frame for frame in imageio.get_reader(videos[0])])  # list() asks the reader for len: inf
    assert frames.shape == (30, 480, 640, 3)
    assert (frames.reshape(30, -1).std(axis=1) > 10).all(), "no blank frame"
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1, "the picture changes as the robot moves"


def test_stochastic_play_samples_actions(run):
    result = run_in_process("play.py", *PLAY, "deterministic=False", "num_episodes=4", cwd=run)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stochastic policy on cpu" in result.stdout


def test_a_multi_gpu_run_plays_in_one_process(run):
    config = run / "runs" / "Ant" / "config.yaml"
    text = config.read_text()
    assert "multi_gpu: false" in text
    config.write_text(text.replace("multi_gpu: false", "multi_gpu: true"))
    try:
        result = run_in_process("play.py", *PLAY, "num_episodes=2", cwd=run)
    finally:
        config.write_text(text)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "episodes          2" in result.stdout


def test_export_onnx_gives_the_torch_policys_actions(run):
    import onnxruntime

    result = run_in_process("play.py", *PLAY, "export=onnx", "num_episodes=1", cwd=run)
    assert result.returncode == 0, result.stderr[-2000:]
    onnx_path = run / "runs" / "Ant" / "exported" / "Ant.onnx"
    assert f"Exported the policy (onnx) to {onnx_path.relative_to(run)}" in result.stdout
    obs = torch.randn(32, 60) * 3
    expected = _torch_policy(run)(obs)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    actions = session.run(["actions"], {"obs": obs.numpy()})[0]
    np.testing.assert_allclose(actions, expected.numpy(), atol=1e-5)


def test_export_jit_gives_the_torch_policys_actions(run):
    result = run_in_process("play.py", *PLAY, "export=jit", "num_episodes=1", cwd=run)
    assert result.returncode == 0, result.stderr[-2000:]
    scripted = torch.jit.load(str(run / "runs" / "Ant" / "exported" / "Ant.pt"))
    obs = torch.randn(16, 60)
    torch.testing.assert_close(scripted(obs), _torch_policy(run)(obs))


def _torch_policy(run):
    """The policy as rl_games computes it: its own player, restored from the checkpoint."""
    player = _rl_games_player(run)
    player.has_batch_dimension = True
    return lambda obs: player.get_action(obs, is_deterministic=True)


def _rl_games_player(run):
    import gymnasium
    import yaml
    from rl_games.algos_torch.players import PpoPlayerContinuous

    config = yaml.safe_load((run / "runs" / "Ant" / "config.yaml").read_text())
    params = config["train"]["params"]
    space = gymnasium.spaces.Box(-np.inf, np.inf, (60,), np.float32)
    params["config"].update(
        device_name="cpu",
        env_info={"observation_space": space, "action_space": gymnasium.spaces.Box(-1.0, 1.0, (8,), np.float32)},
    )
    from rl_games.algos_torch import model_builder

    builder = model_builder.ModelBuilder()
    params["config"]["network"] = builder.load(params)
    player = PpoPlayerContinuous(params)
    player.restore(str(run / "runs" / "Ant" / "nn" / "Ant.pth"))  # rl_games' own loader, unchanged
    return player


def test_rl_games_own_player_loads_a_checkpoint_unchanged(run):
    player = _rl_games_player(run)
    saved = torch.load(run / "runs" / "Ant" / "nn" / "Ant.pth", weights_only=False)["model"]
    for key, value in player.model.state_dict().items():
        torch.testing.assert_close(value, saved[key])


def test_checkpoint_of_another_task_is_refused(run, tmp_path):
    state = torch.load(run / "runs" / "Ant" / "nn" / "Ant.pth", weights_only=False)
    state["env_state"] = {"task": "Humanoid"}
    other = tmp_path / "other.pth"
    torch.save(state, other)
    result = run_in_process("play.py", *CPU, f"checkpoint={other}", "num_envs=2", cwd=run)
    assert result.returncode != 0 and "is a checkpoint of task Humanoid, not Ant" in result.stderr
    assert "Traceback" not in result.stderr


def test_network_of_other_shapes_is_refused(run):
    result = run_in_process("play.py", *PLAY, "train.params.network.mlp.units=[128,64]", cwd=run)
    assert result.returncode != 0 and "does not fit the network of the config" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["experiment=Nope"],
            "no run folder runs/Nope with checkpoints; pick one with experiment=<name> (runs there: Ant)",
        ),
        (["checkpoint=runs/Ant/nn/missing.pth"], "no such file or run folder"),
        (["num_episodes=0"], "num_episodes must be a whole number >= 1"),
        (["video=True", "video_length=0"], "video_length must be a whole number >= 1"),
        (["export=tflite"], "export=tflite is unknown"),
    ],
)
def test_bad_input_gets_a_clear_line_and_changes_nothing(run, args, message):
    before = sorted(p.relative_to(run) for p in (run / "runs").rglob("*.pth"))
    result = run_in_process("play.py", *PLAY, *args, cwd=run)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.relative_to(run) for p in (run / "runs").rglob("*.pth")) == before


def test_a_checkpoint_from_elsewhere_plays_and_writes_only_under_runs(run, tmp_path):
    elsewhere = tmp_path / "downloads"
    elsewhere.mkdir()
    (elsewhere / "policy.pth").write_bytes((run / "runs" / "Ant" / "nn" / "Ant.pth").read_bytes())
    result = run_in_process(
        "play.py", *PLAY[:1], f"checkpoint={elsewhere / 'policy.pth'}", *PLAY[2:], "export=jit", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["policy.pth"], "nothing lands beside the file"
    assert len(list((tmp_path / "runs" / "Ant" / "play").glob("policy_*.json"))) == 1
    assert (tmp_path / "runs" / "Ant" / "exported" / "policy.pt").is_file()


def test_a_full_disk_when_writing_the_report_is_one_line_after_the_report(run, tmp_path):
    def tiny_files() -> None:  # a report is about 1 kB
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    result = subprocess.run(
        [sys.executable, str(ROOT / "play.py"), *PLAY],
        cwd=run,
        capture_output=True,
        text=True,
        preexec_fn=tiny_files,
        check=False,
    )
    assert result.returncode == 2 and "Play report: Ant" in result.stdout, result.stderr[-2000:]
    assert re.search(r"error: cannot write \S+\.json\S*: File too large", result.stderr), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not list((run / "runs" / "Ant" / "play").glob(".*")), "no temporary file is left"


def test_corrupt_checkpoint_is_refused_and_kept(run):
    broken = run / "runs" / "Ant" / "nn" / "last_Ant_ep_99_rew_1.0.pth"
    broken.write_bytes((run / "runs" / "Ant" / "nn" / "Ant.pth").read_bytes()[:1000])
    try:
        result = run_in_process("play.py", *PLAY, "checkpoint=latest", cwd=run)
        assert result.returncode != 0 and "is not a readable checkpoint" in result.stderr
        assert "Traceback" not in result.stderr and broken.stat().st_size == 1000
    finally:
        broken.unlink()


def test_sigma_fixes_the_action_noise_of_a_stochastic_play(run):
    """IsaacGymEnvs' sigma=: with a vanishing standard deviation (exp(-30)), sampled actions are the mean ones."""
    returns = []
    for args in (["deterministic=True"], ["deterministic=False", "sigma=-30"]):
        result = run_in_process("play.py", *PLAY, "num_episodes=4", *args, cwd=run)
        assert result.returncode == 0, result.stderr[-2000:]
        report = re.search(r"written to +(\S+\.json)", result.stdout)[1]
        returns.append(json.loads((run / report).read_text())["returns"])
    assert returns[0] == pytest.approx(returns[1], abs=1e-3)
