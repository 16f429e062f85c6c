"""Which file `checkpoint=` means, on built run folders; atomic saves; reading damaged files."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CPU, run_in_process

from harness.checkpoints import (
    checkpoint_path,
    load_checkpoint,
    periodic_epoch_and_reward,
    resolve_checkpoint,
    save_atomic,
)
from harness.errors import UserError


def make_run(runs: Path, experiment: str, *names: str) -> Path:
    nn = runs / experiment / "nn"
    nn.mkdir(parents=True)
    for name in names:
        (nn / name).write_bytes(b"placeholder")
    return nn


def test_auto_prefers_the_best_checkpoint(tmp_path):
    nn = make_run(tmp_path, "Ant", "Ant.pth", "last_Ant_ep_10_rew_500.0.pth")
    choice = resolve_checkpoint("auto", tmp_path, "Ant")
    assert choice.path == nn / "Ant.pth" and "best" in choice.reason


def test_auto_without_best_takes_the_highest_epoch_numerically(tmp_path):
    nn = make_run(
        tmp_path, "Ant", "last_Ant_ep_9_rew_900.0.pth", "last_Ant_ep_10_rew_100.0.pth", "last_Ant_ep_2_rew_5.pth"
    )
    choice = resolve_checkpoint("auto", tmp_path, "Ant")
    assert choice.path == nn / "last_Ant_ep_10_rew_100.0.pth" and "no best" in choice.reason


def test_latest_ignores_the_best_file_and_modification_times(tmp_path):
    nn = make_run(tmp_path, "Ant", "last_Ant_ep_10_rew_1.pth", "last_Ant_ep_9_rew_2.pth", "Ant.pth")
    (nn / "last_Ant_ep_9_rew_2.pth").touch()  # the newest file on disk is not the newest epoch
    assert resolve_checkpoint("latest", tmp_path, "Ant").path == nn / "last_Ant_ep_10_rew_1.pth"


@pytest.mark.parametrize(
    "name, epoch, reward",
    [
        ("last_Ant_ep_3_rew_-12.5.pth", 3, -12.5),
        ("last_Ant_ep_40_rew_1.2e+03.pth", 40, 1200.0),
        ("last_Ant_ep_50_rew__7730.75_.pth", 50, 7730.75),
        ("last_Ant_ep_5_rew_-inf.pth", 5, float("-inf")),
    ],
)
def test_odd_rewards_in_names_parse(name, epoch, reward):
    assert periodic_epoch_and_reward(Path(name), "Ant") == (epoch, reward)


def test_other_experiments_files_beside_it_are_ignored(tmp_path):
    nn = make_run(
        tmp_path,
        "Ant",
        "last_Ant_ep_2_rew_1.pth",
        "last_Ant_long_ep_90_rew_1.pth",
        "Ant_long.pth",
        "last_Ant_ep_notanumber_rew_1.pth",
        ".Ant.pth.abc.tmp",
    )
    assert resolve_checkpoint("auto", tmp_path, "Ant").path == nn / "last_Ant_ep_2_rew_1.pth"


def test_a_run_folder_or_a_file_can_be_given(tmp_path):
    nn = make_run(tmp_path, "walk", "walk.pth", "last_walk_ep_3_rew_1.pth")
    assert resolve_checkpoint(str(tmp_path / "walk"), tmp_path, "Ant").path == nn / "walk.pth"
    assert resolve_checkpoint(str(nn), tmp_path, "Ant").path == nn / "walk.pth"
    given = nn / "last_walk_ep_3_rew_1.pth"
    assert resolve_checkpoint(str(given), tmp_path, "Ant").path == given


def test_missing_run_lists_the_runs_that_exist(tmp_path):
    make_run(tmp_path, "Ant", "Ant.pth")
    make_run(tmp_path, "Humanoid", "Humanoid.pth")
    with pytest.raises(UserError, match="runs there: Ant, Humanoid"):
        resolve_checkpoint("auto", tmp_path, "Walker")


def test_folder_without_checkpoints_and_missing_paths_are_user_errors(tmp_path):
    make_run(tmp_path, "Ant")
    with pytest.raises(UserError, match="holds no checkpoint"):
        resolve_checkpoint("auto", tmp_path, "Ant")
    with pytest.raises(UserError, match="no best checkpoint"):
        resolve_checkpoint("best", tmp_path, "Ant")
    with pytest.raises(UserError, match="no such file or run folder"):
        resolve_checkpoint("runs/Ant/nn/nothing.pth", tmp_path, "Ant")


def test_corrupt_and_truncated_files_are_user_errors(tmp_path):
    good = tmp_path / "good.pth"
    save_atomic({"model": {"w": torch.ones(3)}, "epoch": 1}, good)
    assert load_checkpoint(good)["epoch"] == 1
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": 1}, foreign)
    for path in (truncated, garbage, foreign):
        with pytest.raises(UserError, match=str(path.name)) as refused:
            load_checkpoint(path)
        assert "weights_only" not in str(refused.value), "no advice to load a file unsafely"
    assert good.read_bytes() and truncated.exists() and garbage.exists(), "nothing is deleted"


class Payload:
    """Pickles as a call of os.system: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_carries_code_is_refused_without_running_it(tmp_path):
    marker, payload = tmp_path / "marker", tmp_path / "policy.pth"
    torch.save({"model": {"w": torch.ones(1)}, "epoch": Payload(marker)}, payload)
    with pytest.raises(UserError, match="holds posix.system, which loading would run as code"):
        load_checkpoint(payload)
    for script in ("play.py", "train.py"):
        result = run_in_process(script, "task=Ant", "num_envs=4", *CPU, f"checkpoint={payload}", cwd=tmp_path)
        assert result.returncode == 2 and "was not loaded" in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
    assert not marker.exists(), "no code from the file ran"


def with_numpy_1_names(path: Path) -> None:
    """Rewrite a checkpoint as numpy 1 pickled it (numpy.core rather than numpy._core)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    pickled = next(name for name in members if name.endswith("data.pkl"))
    members[pickled] = members[pickled].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def test_earlier_checkpoints_with_numpy_rewards_still_load(tmp_path):
    for numpy_1 in (False, True):
        path = tmp_path / f"earlier{numpy_1}.pth"
        torch.save({"model": {"w": torch.ones(1)}, "last_mean_rewards": np.float32(512.5)}, path)
        if numpy_1:
            with_numpy_1_names(path)
            assert b"numpy.core.multiarray" in path.read_bytes()
        assert float(load_checkpoint(path)["last_mean_rewards"]) == 512.5


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "x.pth"
    save_atomic({"model": {}}, path)
    save_atomic({"model": {"a": torch.zeros(1)}}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["x.pth"]
    assert "a" in torch.load(path, weights_only=False)["model"]


def test_end_of_training_names_take_the_periodic_form():
    assert checkpoint_path("runs/A/nn/last_A_ep_4_rew__[12.5]_").name == "last_A_ep_4_rew_12.5.pth"
    assert checkpoint_path("runs/A/nn/last_A_ep_4_rew__-3.25_").name == "last_A_ep_4_rew_-3.25.pth"
    assert checkpoint_path("runs/A/nn/A").name == "A.pth"


def test_the_run_folder_names_its_files_as_readme_lays_them_out(tmp_path):
    from harness.runs import RunFolder

    run = RunFolder("Ant", tmp_path)
    assert run.config_file == tmp_path / "Ant" / "config.yaml"
    assert run.config_history == tmp_path / "Ant" / "config_history.yaml"
    assert run.best_checkpoint == tmp_path / "Ant" / "nn" / "Ant.pth"
    assert RunFolder.of_checkpoint(run.nn / "last_Ant_ep_5_rew_1.0.pth") == run
    assert RunFolder.of_checkpoint(tmp_path / "elsewhere.pth") is None
