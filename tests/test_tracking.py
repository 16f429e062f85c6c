"""Weights & Biases (wandb_activate=True) on the CPU, offline: what the W&B run holds is read back from its file."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest
from conftest import CPU, ROOT, run_script

WANDB = [
    "task=Cartpole",
    "num_envs=16",
    "max_iterations=3",
    *CPU,
    "wandb_activate=True",
    "wandb_project=harness-tests",
    "wandb_group=ci",
    "wandb_tags=[cpu,tiny]",
    "train.params.config.save_best_after=1",
]
# The first session also records a video, which W&B gets as media.
VIDEO = ["capture_video=True", "capture_video_freq=20", "capture_video_len=10"]


def wandb_records(path):
    """The protobuf records of a .wandb file (W&B's run log: a 7-byte header, then LevelDB-style log blocks of
    32 KiB whose records are CRC (4 bytes), length (2), type (1: whole, 2/3/4: first/middle/last piece), data)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B", path
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def logged(path) -> dict:
    """The run record, the history's keys and the last summary values of one offline W&B run."""
    run, history, summary = None, set(), {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            history |= {_key(item) for item in record.history.item}
        elif kind == "summary":
            summary.update({_key(item): json.loads(item.value_json) for item in record.summary.update})
    return {"run": run, "history": history, "summary": summary}


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)  # TensorBoard's tags come as nested keys ("rewards", "step")


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """A run trained with W&B offline, then resumed with checkpoint=auto."""
    workdir = tmp_path_factory.mktemp("wandb")
    env = {**os.environ, "WANDB_MODE": "offline"}
    first = run_script("train.py", *WANDB, *VIDEO, cwd=workdir, env=env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    resumed = run_script("train.py", *WANDB, "max_iterations=4", "checkpoint=auto", cwd=workdir, env=env)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    run = workdir / "runs" / "Cartpole"
    files = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    return run, files


def test_the_wandb_run_holds_the_config_the_scalars_and_the_checkpoints(offline):
    run, files = offline
    first = logged(files[0])
    assert first["run"].project == "harness-tests" and first["run"].run_group == "ci"
    assert list(first["run"].tags) == ["cpu", "tiny"] and first["run"].display_name == "Cartpole"
    config = {item.key: json.loads(item.value_json) for item in first["run"].config.update}
    assert config["task_name"] == "Cartpole" and config["task"]["env"]["numEnvs"] == 16
    # TensorBoard's scalars, rl_games' and this project's
    assert {"rewards/step", "losses/a_loss", "info/last_lr", "performance/env_steps_per_s"} <= first["history"]
    assert "videos/train/_type" in first["history"], "capture_video's videos, as W&B media"
    assert first["summary"]["checkpoint/best"] == str((run / "nn" / "Cartpole.pth").resolve())
    assert first["summary"]["checkpoint/latest"].endswith(".pth") and "_ep_3_" in first["summary"]["checkpoint/latest"]


def test_a_resume_continues_the_same_wandb_run(offline):
    run, files = offline
    run_id = (run / "wandb_run_id").read_text().strip()
    assert len(files) == 2, "one offline W&B run per training session"
    assert [logged(path)["run"].run_id for path in files] == [run_id, run_id]
    assert "_ep_4_" in logged(files[1])["summary"]["checkpoint/latest"]


def test_wandb_without_a_login_is_one_line_and_leaves_nothing(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_MODE="online")  # no API key, no ~/.netrc
    result = run_script("train.py", *WANDB, cwd=tmp_path, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: wandb_activate=True: W&B did not start" in result.stderr and "WANDB_MODE=offline" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_wandb_not_installed_is_one_line(tmp_path):
    """The wandb package made unimportable in the training process, as where it is not installed."""
    train = (
        f"import runpy, sys; sys.modules['wandb'] = None; sys.path.insert(0, {str(ROOT)!r}); "
        + (f"sys.argv = {['train.py', *WANDB]!r}; ")
        + (f"runpy.run_path({str(ROOT / 'train.py')!r}, run_name='__main__')")
    )
    result = subprocess.run([sys.executable, "-c", train], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: wandb_activate=True needs the wandb package: pip install wandb" in result.stderr
