"""What of multi-GPU training can be checked without GPUs: rank and device choice, rank-0 writing, bad input."""

from __future__ import annotations

import os

import pytest
from conftest import CPU, compose_config, run_script

from harness.config import multi_gpu_device
from harness.errors import UserError
from harness.runs import prepare_run_dir

TORCHRUN = {"LOCAL_RANK": "1", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}


def test_each_rank_gets_the_gpu_of_its_local_rank():
    assert multi_gpu_device(TORCHRUN, device_count=2) == "cuda:1"
    assert multi_gpu_device({**TORCHRUN, "LOCAL_RANK": "0"}, device_count=8) == "cuda:0"


def test_more_ranks_than_gpus_is_refused():
    with pytest.raises(UserError, match="started 2 processes on this machine, which has 1 GPU"):
        multi_gpu_device(TORCHRUN, device_count=1)


def test_no_torchrun_or_no_gpu_is_refused():
    with pytest.raises(UserError, match="needs torchrun"):
        multi_gpu_device({}, device_count=2)
    with pytest.raises(UserError, match="needs CUDA GPUs"):
        multi_gpu_device(TORCHRUN, device_count=0)


def test_only_rank_zero_writes_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_config(*CPU)
    prepare_run_dir(cfg, "Ant", write=False)
    assert not (tmp_path / "runs").exists()
    prepare_run_dir(cfg, "Ant", write=True)
    assert (tmp_path / "runs" / "Ant" / "config.yaml").is_file()


@pytest.mark.skipif("LOCAL_RANK" in os.environ, reason="needs a shell that torchrun did not start")
def test_train_multi_gpu_without_torchrun_is_a_clear_error(tmp_path):
    result = run_script("train.py", "multi_gpu=True", cwd=tmp_path)
    assert result.returncode != 0 and "multi_gpu=True needs torchrun's environment" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()
