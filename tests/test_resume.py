"""Resume and crash safety: what a resume restores, the best-never-worse rule, kills, signals, bad input."""

from __future__ import annotations

import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import CPU, CUDA, ROOT, compose_config, run_in_process, run_script

from harness.checkpoints import load_checkpoint
from harness.config import prepare_config

BASE = [
    "task=Ant",
    "num_envs=32",
    *CPU,
    "task.env.episodeLength=24",
    "train.params.config.save_best_after=1",
    "train.params.config.save_frequency=2",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("resume")
    result = run_script("train.py", *BASE, "max_iterations=4", cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    return workdir


def make_agent(workdir, monkeypatch, *overrides):
    """rl_games' agent as train.py builds it, in this process."""
    from harness.rl.trainer import build_trainer, rl_games_params

    monkeypatch.chdir(workdir)
    cfg = prepare_config(compose_config(*BASE, *overrides))
    runner = build_trainer(cfg, rl_games_params(cfg, "Ant"))
    return runner.algo_factory.create("a2c_continuous", base_name="run", params=runner.params)


def test_resume_restores_the_whole_training_state(run, monkeypatch):
    path = run / "runs" / "Ant" / "nn" / "last_Ant_ep_4_rew_"
    path = next((run / "runs" / "Ant" / "nn").glob("last_Ant_ep_4_rew_*.pth"))
    saved = load_checkpoint(path)
    agent = make_agent(run, monkeypatch)
    agent.restore(str(path))
    model = agent.model.state_dict()
    for key in (
        "running_mean_std.running_mean",
        "running_mean_std.running_var",
        "value_mean_std.running_mean",
        "a2c_network.mu.weight",
        "a2c_network.sigma",
    ):
        torch.testing.assert_close(model[key], saved["model"][key])
    optimizer = agent.optimizer.state_dict()
    first = next(iter(saved["optimizer"]["state"]))
    torch.testing.assert_close(optimizer["state"][first]["exp_avg"], saved["optimizer"]["state"][first]["exp_avg"])
    assert float(optimizer["state"][first]["step"]) == float(saved["optimizer"]["state"][first]["step"]) > 0
    saved_lr = saved["optimizer"]["param_groups"][0]["lr"]
    assert agent.last_lr == saved_lr and saved_lr != 3e-4, "the adaptive learning rate, not the config's"
    assert agent.epoch_num == saved["epoch"] == 4 and agent.frame == saved["frame"] == 4 * 32 * 16
    assert agent.scaler.state_dict() == saved.get("scaler", agent.scaler.state_dict())
    assert agent.update_epoch() == 5, "training continues at the next epoch"
    assert agent.last_mean_rewards == pytest.approx(float(saved["last_mean_rewards"])), "the best reward is kept"


def test_resume_continues_the_run_in_place(run):
    result = run_in_process("train.py", *BASE, "max_iterations=6", "checkpoint=auto", cwd=run)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Resuming from runs/Ant/nn/last_Ant_ep_4_rew_" in result.stdout
    epochs = re.findall(r"^epoch (\d+)/6", result.stdout, flags=re.M)
    assert epochs == ["5", "6"], "the progress shows the resumed epochs of the whole run"
    nn = run / "runs" / "Ant" / "nn"
    assert any(nn.glob("last_Ant_ep_6_rew_*.pth"))
    assert load_checkpoint(next(nn.glob("last_Ant_ep_6_rew_*.pth")))["frame"] == 6 * 32 * 16
    history = (run / "runs" / "Ant" / "config_history.yaml").read_text()
    assert history.startswith("--- # resumed") and "max_epochs: 6" in history
    assert "max_epochs: 4" in (run / "runs" / "Ant" / "config.yaml").read_text(), "the first config is kept"


def test_a_resumed_run_never_replaces_the_best_with_a_worse_policy(tmp_path):
    assert run_in_process("train.py", *BASE, "max_iterations=2", cwd=tmp_path).returncode == 0
    nn = tmp_path / "runs" / "Ant" / "nn"
    latest = next(nn.glob("last_Ant_ep_2_rew_*.pth"))
    state = torch.load(latest, weights_only=False)
    state["last_mean_rewards"] = 1e6  # a best far above anything this tiny run reaches
    torch.save(state, latest)
    best_before = (nn / "Ant.pth").read_bytes()
    result = run_in_process("train.py", *BASE, "max_iterations=4", "checkpoint=auto", cwd=tmp_path)
    assert result.returncode == 0 and "saving next best" not in result.stdout
    assert (nn / "Ant.pth").read_bytes() == best_before


def test_resuming_an_older_checkpoint_keeps_the_best_the_run_recorded(run, tmp_path):
    shutil.copytree(run / "runs", tmp_path / "runs")
    nn = tmp_path / "runs" / "Ant" / "nn"
    best = torch.load(nn / "Ant.pth", weights_only=False)
    best["last_mean_rewards"] = 1e6  # a best far above anything this tiny run reaches
    torch.save(best, nn / "Ant.pth")
    best_before = (nn / "Ant.pth").read_bytes()
    older = next(nn.glob("last_Ant_ep_2_rew_*.pth")).relative_to(tmp_path)
    result = run_in_process("train.py", *BASE, "max_iterations=4", f"checkpoint={older}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "at epoch 2 (frame 1024, best mean reward 1000000.00," in result.stdout
    assert (nn / "Ant.pth").read_bytes() == best_before


def test_periodic_checkpoints_do_not_wait_for_an_episode_to_end(tmp_path):
    no_episode_ends = [*BASE, "task.env.episodeLength=1000", "train.params.config.save_frequency=1"]
    result = run_in_process("train.py", *no_episode_ends, "max_iterations=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "runs" / "Ant" / "nn").iterdir())
    assert names == [f"last_Ant_ep_{epoch}_rew_-inf.pth" for epoch in (1, 2, 3)]
    resumed = run_in_process("train.py", *no_episode_ends, "max_iterations=4", "checkpoint=auto", cwd=tmp_path)
    assert "no best checkpoint yet" in resumed.stdout and "-1000000000" not in resumed.stdout


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_a_resumed_run_ends_exactly_where_the_uninterrupted_one_does(tmp_path, device):
    """6 epochs in one go, and 3 then resumed to 6: episodes straddle the epochs (20 steps, 16 an epoch; a
    resume that restarted every world would be 8 steps off in each).
    On CUDA, where MuJoCo Warp's sums are not promised bit-reproducible, the resumed run continues the same
    episodes (the worlds' state goes back onto the GPU) and reaches the same steps of them."""
    on = [arg for arg in BASE if arg not in CPU and "episodeLength" not in arg]
    on += [f"sim_device={device}", f"rl_device={device}", "task.env.episodeLength=20"]
    same = [*on, "torch_deterministic=True", "train.params.config.save_frequency=3"]
    for args in (["experiment=whole", "max_iterations=6"], ["experiment=split", "max_iterations=3"]):
        assert run_in_process("train.py", *same, *args, cwd=tmp_path).returncode == 0
    resumed = run_in_process("train.py", *same, "experiment=split", "max_iterations=6", "checkpoint=auto", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "every world starts a new episode" not in resumed.stdout
    whole, split = (
        load_checkpoint(next((tmp_path / "runs" / name / "nn").glob(f"last_{name}_ep_6_rew_*.pth")))
        for name in ("whole", "split")
    )
    progress = [run["env_state"]["env"]["buffers"]["progress_buf"] for run in (split, whole)]
    if device != "cpu":  # (a world whose fall a rounding difference moved by a step may differ)
        assert (progress[0] == progress[1]).float().mean() >= 0.9
        return
    for name, value in whole["model"].items():  # weights and both normalizers' statistics
        torch.testing.assert_close(split["model"][name], value, rtol=0, atol=1e-6, msg=name)
    for key, state in whole["optimizer"]["state"].items():
        torch.testing.assert_close(split["optimizer"]["state"][key]["exp_avg_sq"], state["exp_avg_sq"])
    torch.testing.assert_close(split["env_state"]["env"]["sim"]["qpos"], whole["env_state"]["env"]["sim"]["qpos"])
    torch.testing.assert_close(*progress)


def test_resuming_with_another_num_envs_starts_new_episodes_and_says_so(run, tmp_path):
    shutil.copytree(run / "runs", tmp_path / "runs")
    other = [*BASE, "num_envs=16", "max_iterations=7", "checkpoint=auto"]  # (the run is at epoch 4 or 6)
    result = run_in_process("train.py", *other, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    said = "The checkpoint's episodes are of 32 envs, this run has 16: every world starts a new episode"
    assert said in result.stdout


def test_auto_starts_fresh_when_there_is_no_run(tmp_path):
    result = run_in_process("train.py", *BASE, "max_iterations=1", "checkpoint=auto", cwd=tmp_path)
    assert result.returncode == 0 and "no checkpoint in runs/Ant/nn, starting a new run" in result.stdout
    assert (tmp_path / "runs" / "Ant" / "config.yaml").is_file()


def _start(workdir, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(predicate, timeout: float = 120.0, step: float = 0.001) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_sigkill_at_any_moment_loses_at_most_save_frequency_epochs(tmp_path):
    """Killed mid-epoch and mid-save, then resumed with checkpoint=auto until the run is done."""
    big = [
        *BASE[:-1],
        "train.params.config.save_frequency=1",
        "train.params.network.mlp.units=[1024,1024,1024]",
        "max_iterations=12",
    ]
    nn = tmp_path / "runs" / "Ant" / "nn"
    saving = lambda: any(nn.glob(".*.tmp"))  # noqa: E731 - a checkpoint is being written right now
    kills = [
        lambda: _wait_for(lambda: len(list(nn.glob("last_*.pth"))) >= 2) and time.sleep(0.3),
        lambda: _wait_for(saving),
        lambda: _wait_for(saving),
    ]
    caught_mid_save = 0
    for kill_when in kills:
        process = _start(tmp_path, *big, "checkpoint=auto")
        kill_when()
        caught_mid_save += saving()
        process.send_signal(signal.SIGKILL)
        process.communicate()
        for path in nn.glob("*.pth"):
            assert "model" in load_checkpoint(path), path  # every checkpoint on disk is whole
    assert caught_mid_save >= 1, "at least one kill landed during a save"
    newest = max(int(re.search(r"_ep_(\d+)_", p.name)[1]) for p in nn.glob("last_*.pth"))
    process = _start(tmp_path, *big, "checkpoint=auto")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-2000:]
    assert f"at epoch {newest} " in output and any(nn.glob("last_Ant_ep_12_rew_*.pth"))
    assert not list(nn.glob(".*.tmp")), "the files a kill left half-written were swept at the next start"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_the_current_epoch(tmp_path, signum):
    process = _start(tmp_path, *BASE, "max_iterations=100000")
    lines = []
    third_epoch = re.compile(r"^epoch +3/")  # the epoch number is padded to the width of max_iterations
    assert _wait_for(lambda: lines.append(process.stdout.readline()) or third_epoch.match(lines[-1]), step=0)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signum
    saved = re.search(r"saved (runs/Ant/nn/last_Ant_ep_(\d+)_rew_\S+\.pth); continue with checkpoint=auto", output)
    assert saved, output[-2000:]
    assert load_checkpoint(tmp_path / saved[1])["epoch"] == int(saved[2]) >= 3


def test_a_second_ctrl_c_quits_at_once_in_one_line(tmp_path):
    slow = [*BASE, "num_envs=512", "train.params.network.mlp.units=[1024,1024,1024]", "max_iterations=100000"]
    process = _start(tmp_path, *slow)
    lines = []
    assert _wait_for(lambda: lines.append(process.stdout.readline()) or lines[-1].startswith("epoch "), step=0)
    process.send_signal(signal.SIGINT)
    # Two SIGINTs that arrive before Python runs its handler count as one: send the second once the first is seen.
    assert _wait_for(lambda: lines.append(process.stdout.readline()) or "saving a checkpoint" in lines[-1], step=0)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT and "Second Ctrl-C: quitting now" in output, output[-2000:]
    assert "Traceback" not in output and not list((tmp_path / "runs" / "Ant" / "nn").glob(".*.tmp"))


def test_a_run_being_trained_is_locked_against_a_second_training(tmp_path):
    first = _start(tmp_path, *BASE, "max_iterations=100000")
    lines = []
    assert _wait_for(lambda: lines.append(first.stdout.readline()) or lines[-1].startswith("epoch "), step=0)
    for again in ("checkpoint=auto", "checkpoint="):
        second = run_in_process("train.py", *BASE, "max_iterations=2", again, cwd=tmp_path)
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        assert f"runs/Ant is in use: process {first.pid} on " in second.stderr and "Traceback" not in second.stderr
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, output[-2000:]
    assert len(list((tmp_path / "runs" / "Ant" / "summaries").iterdir())) == 1, "one run's curves only"


def test_a_full_disk_at_save_time_is_a_clear_error_that_keeps_what_is_there(run, tmp_path):
    def small_files() -> None:  # files above 100 kB cannot be written: a checkpoint is about 700 kB
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *BASE, "max_iterations=4"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        check=False,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert re.search(r"cannot write checkpoint runs/Ant/nn/\S+\.pth: File too large", result.stderr), result.stderr
    assert list((tmp_path / "runs" / "Ant" / "nn").iterdir()) == [], "no partial file is left behind"


@pytest.mark.parametrize(
    "change, message",
    [
        ("corrupt", "is not a readable checkpoint"),
        ("other task", "is a checkpoint of task Humanoid, not Ant"),
    ],
)
def test_a_bad_checkpoint_to_resume_is_refused(run, tmp_path, change, message):
    source = run / "runs" / "Ant" / "nn" / "Ant.pth"
    bad = tmp_path / "bad.pth"
    if change == "corrupt":
        bad.write_bytes(source.read_bytes()[:500])
    else:
        state = torch.load(source, weights_only=False)
        state["env_state"] = {"task": "Humanoid"}
        torch.save(state, bad)
    result = run_in_process(
        "train.py", *BASE, "max_iterations=2", f"checkpoint={bad}", "experiment=other", cwd=tmp_path
    )
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_a_run_resumed_at_its_last_epoch_is_refused_and_left_as_it_was(run, tmp_path):
    """rl_games would train one more epoch past max_iterations (epoch 5/4, a negative time left): refused instead.
    (The module's run is at epoch 4, or 6 once another test has resumed it.)"""
    shutil.copytree(run / "runs", tmp_path / "runs")
    nn = tmp_path / "runs" / "Ant" / "nn"
    before = {p.name: p.stat().st_mtime_ns for p in nn.iterdir()}
    result = run_in_process("train.py", *BASE, "max_iterations=4", "checkpoint=auto", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    said = r"is at epoch ([46]), and this run ends at epoch 4: nothing to train; set max_iterations above \1 to"
    assert re.search(said, result.stderr), result.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in nn.iterdir()} == before


def test_a_checkpoint_of_another_network_is_refused(run):
    result = run_in_process(
        "train.py", *BASE, "max_iterations=8", "checkpoint=auto", "train.params.network.mlp.units=[32,32]", cwd=run
    )
    assert result.returncode != 0 and "does not fit the network of the config" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_world_gone_non_finite_is_reset_and_counted():
    from conftest import make_ant

    ant = make_ant(4)
    ant.reset()
    ant.sim.qvel[2] = float("nan")
    obs, reward, done, extras = ant.step(torch.zeros(4, 8))
    assert int(extras["nonfinite_resets"]) == 1 and done[2] and reward[2] == 0
    assert torch.isfinite(obs["obs"]).all() and torch.isfinite(reward).all()
    obs, reward, done, extras = ant.step(torch.zeros(4, 8))
    assert int(extras["nonfinite_resets"]) == 0 and torch.isfinite(obs["obs"]).all()
