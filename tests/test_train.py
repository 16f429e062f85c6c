"""The real train.py, end to end on the CPU with tiny budgets, and its answers to bad input."""

from __future__ import annotations

import re
import statistics

import pytest
import torch
from conftest import CPU, run_in_process, run_script

TINY = [
    "task=Ant",
    "num_envs=64",
    "max_iterations=4",
    *CPU,
    "task.env.episodeLength=24",
    "train.params.config.save_best_after=1",
    "train.params.config.save_frequency=2",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("train")
    result = run_script("train.py", *TINY, cwd=workdir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return workdir, result


def test_run_folder_is_exactly_the_convention(trained):
    workdir, _ = trained
    run = workdir / "runs" / "Ant"
    assert sorted(p.name for p in workdir.iterdir()) == ["runs"], "nothing else lands in the working directory"
    assert sorted(p.name for p in run.iterdir()) == [".lock", "config.yaml", "nn", "summaries"]
    names = sorted(p.name for p in (run / "nn").iterdir())
    assert "Ant.pth" in names
    periodic = [n for n in names if n != "Ant.pth"]
    assert periodic and all(re.fullmatch(r"last_Ant_ep_\d+_rew_-?[\d.e+-]+\.pth", n) for n in periodic), names
    assert {int(re.search(r"_ep_(\d+)_", n).group(1)) for n in periodic} == {2, 4}
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "summaries").iterdir())


def test_checkpoints_are_plain_rl_games_files(trained):
    workdir, _ = trained
    for path in (workdir / "runs" / "Ant" / "nn").glob("*.pth"):
        state = torch.load(path, weights_only=False)
        assert {"model", "epoch", "frame", "optimizer", "last_mean_rewards"} <= set(state)
        assert not any(key.startswith("_orig_mod.") for key in state["model"])
        assert "running_mean_std.running_mean" in state["model"]
        assert state["model"]["a2c_network.mu.weight"].shape == (8, 64)


def test_config_yaml_is_the_resolved_run_config(trained):
    import yaml

    workdir, _ = trained
    config = yaml.safe_load((workdir / "runs" / "Ant" / "config.yaml").read_text())
    assert config["task"]["env"]["numEnvs"] == 64 and config["train"]["params"]["config"]["max_epochs"] == 4
    assert config["sim_device"] == "cpu" and config["seed"] == 42
    assert "${" not in (workdir / "runs" / "Ant" / "config.yaml").read_text()


def test_progress_shows_epochs_speed_reward_and_time_left(trained):
    _, result = trained
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split("|")[0].split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert all("steps/s" in line and "reward" in line and "left" in line for line in lines)


def test_the_terminal_shows_the_projects_lines_and_ends_with_where_the_run_is(trained):
    _, result = trained
    for chatter in ("self.seed", "build mlp", "RunningMeanStd", "Started to train", "current training device"):
        assert chatter not in result.stdout, f"rl_games' {chatter!r} shown without verbose=True"
    ending = result.stdout[result.stdout.index("Training ended after epoch 4") :]
    assert "run folder    runs/Ant" in ending and "tensorboard --logdir runs/Ant/summaries" in ending
    assert re.search(r"best +runs/Ant/nn/Ant\.pth +\(mean reward -?[\d.]+\)", ending), ending
    assert "latest        runs/Ant/nn/last_Ant_ep_4_rew_" in ending
    assert ending.rstrip().endswith("play it       python play.py task=Ant"), ending


def test_verbose_shows_rl_games_own_output_too(capsys):
    from rl_games.algos_torch.running_mean_std import RunningMeanStd

    from harness.console import rl_games_output

    for shown in (False, True):
        with rl_games_output(shown=shown):
            RunningMeanStd((3,))  # rl_games prints its shape
            print("ours")
        out = capsys.readouterr().out
        assert "ours" in out and ("RunningMeanStd:  (3,)" in out) == shown, out


def test_an_earlier_run_is_never_overwritten(trained):
    workdir, _ = trained
    nn = workdir / "runs" / "Ant" / "nn"
    before = {p.name: p.stat().st_mtime_ns for p in nn.iterdir()}
    config_before = (workdir / "runs" / "Ant" / "config.yaml").read_text()
    result = run_in_process("train.py", *TINY, cwd=workdir)
    assert result.returncode != 0 and "runs/Ant/nn already holds" in result.stderr and "experiment=" in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in nn.iterdir()} == before
    assert (workdir / "runs" / "Ant" / "config.yaml").read_text() == config_before


@pytest.mark.parametrize(
    "args, message",
    [
        (["task=NoSuchTask"], "Could not find 'task/NoSuchTask'"),
        (["no_such_key=1"], "Could not override 'no_such_key'"),
        (["num_envs=0"], "num_envs must be a whole number >= 1"),
        (["checkpoint=missing.pth"], "checkpoint=missing.pth: no such file or run folder"),
        (["physics_engine=bullet"], "physics_engine=bullet is unknown"),
        (["num_envs=8589934592"], "out of memory on cpu while starting 8589934592 envs: use fewer"),
        (["max_iterations=0"], "max_iterations must be a whole number of epochs >= 1"),
        (["seed=abc"], "seed must be a whole number from 0 to 2147483647, or -1 to draw one; got 'abc'"),
        (["headless=maybe"], "headless must be True or False, got 'maybe'"),
        (["train.params.config.horizon_length=0"], "train.params.config.horizon_length must be a whole number >= 1"),
        (["train.params.config.gamma=abc"], "train.params.config.gamma must be a number from 0 to 1, got 'abc'"),
        (["train.params.config.learning_rate=-1"], "train.params.config.learning_rate must be a number > 0, got -1"),
        (["task.env.episodeLength=0"], "task.env.episodeLength must be a whole number of steps >= 1, got 0"),
    ],
)
def test_bad_input_gets_a_clear_line_and_nonzero_exit(tmp_path, args, message):
    result = run_in_process("train.py", *CPU, *args, cwd=tmp_path)
    assert result.returncode != 0 and message in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def test_a_diverging_network_stops_training_and_is_never_saved(tmp_path):
    result = run_in_process(
        "train.py", *TINY, "max_iterations=2", "train.params.config.learning_rate=1e6", cwd=tmp_path
    )
    assert result.returncode == 2 and "training diverged in epoch 1" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not list(tmp_path.rglob("*.pth"))


def test_a_bad_checkpoint_is_refused_before_anything_is_written(tmp_path):
    bad = tmp_path / "shared.pth"
    bad.write_bytes(b"not a checkpoint")
    result = run_in_process("train.py", *TINY, f"checkpoint={bad}", "experiment=fresh", cwd=tmp_path)
    assert result.returncode == 2 and "is not a readable checkpoint" in result.stderr
    assert "Resuming" not in result.stdout and not (tmp_path / "runs").exists()


def test_unwritable_runs_folder_is_a_clear_error(tmp_path):
    (tmp_path / "runs").write_text("a file where the runs folder should be")
    result = run_in_process("train.py", *TINY, cwd=tmp_path)
    assert result.returncode != 0 and "cannot write the run folder runs/Ant" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a machine without CUDA")
def test_without_cuda_the_default_devices_fall_back_to_the_cpu_in_one_line(tmp_path):
    result = run_in_process(
        "train.py", *[a for a in TINY if not a.endswith("_device=cpu")], "max_iterations=1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    notices = [line for line in result.stdout.splitlines() if "No CUDA device" in line]
    assert notices == ["No CUDA device found: running on the CPU instead of sim_device=cuda:0 and rl_device=cuda:0."]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_asking_for_cuda_without_cuda_is_a_clear_error(tmp_path):
    result = run_in_process("train.py", "sim_device=cuda:0", "rl_device=cpu", cwd=tmp_path)
    assert result.returncode != 0 and "sim_device=cuda:0 was asked for, but this machine has no CUDA" in result.stderr


def test_config_yaml_records_what_ran_and_rebuilds_rl_games_agent(trained, tmp_path, monkeypatch):
    from omegaconf import OmegaConf
    from rl_games.torch_runner import Runner

    from harness.rl.agent import register_env
    from harness.tasks import make_task

    workdir, result = trained
    saved = OmegaConf.load(workdir / "runs" / "Ant" / "config.yaml")
    config = saved.train.params.config
    assert "training in float32 on the CPU" in result.stdout and config.mixed_precision is False
    assert "using 1024" in result.stdout and config.minibatch_size == 64 * 16
    monkeypatch.chdir(tmp_path)  # rl_games' agent makes its run folder
    register_env(lambda: make_task(OmegaConf.to_container(saved.task), saved.sim_device, saved.rl_device))
    params = OmegaConf.to_container(saved.train.params)
    params["config"]["device"] = saved.rl_device
    runner = Runner()
    runner.load({"params": params})
    agent = runner.algo_factory.create(runner.algo_name, base_name="run", params=runner.params)  # rl_games' own
    assert agent.batch_size == agent.minibatch_size == 64 * 16


def train_with_observers(experiment: str, observers: list, *overrides: str) -> None:
    """Train Cartpole on the CPU in this process, from the current folder, as train.py's trainer does, with these
    observers (which the test then reads)."""
    from conftest import compose_config

    from harness.config import prepare_config
    from harness.rl.trainer import build_trainer, rl_games_params

    cfg = prepare_config(compose_config("task=Cartpole", *CPU, *overrides))
    trainer = build_trainer(cfg, rl_games_params(cfg, experiment), observers)
    trainer.run({"train": True, "play": False, "checkpoint": None, "sigma": None})


def test_every_observer_of_a_trainer_hears_every_epoch(tmp_path, monkeypatch):
    """Observers are a list: one more (a W&B logger, say) is added without touching the others."""
    from harness.rl.progress import ProgressObserver
    from harness.rl.seam import AlgoObserver

    class Recorder(AlgoObserver):
        def __init__(self) -> None:
            super().__init__()
            self.events: list = []

        def after_init(self, algo) -> None:
            self.events.append("init")

        def after_print_stats(self, frame, epoch_num, total_time) -> None:
            self.events.append(epoch_num)

    monkeypatch.chdir(tmp_path)
    progress, recorder = ProgressObserver(), Recorder()
    train_with_observers(
        "observed", [progress, recorder], "num_envs=16", "max_iterations=2", "train.params.config.minibatch_size=256"
    )
    assert recorder.events == ["init", 1, 2]
    assert len(progress.steps_per_s) == 2


def test_every_epochs_speed_is_timed_over_that_epoch_the_last_too(tmp_path, monkeypatch):
    """An epoch is reported after the next is queued (on the CPU: has run) and the last straight after the one before,
    so timing the reports would make the last epoch look many times faster than the others (396,045 against about
    11,000 steps/s on two CPU cores): each epoch is timed to when its rollout had ended instead."""
    from harness.rl.progress import ProgressObserver

    monkeypatch.chdir(tmp_path)
    progress = ProgressObserver()
    train_with_observers(
        "timed", [progress], "num_envs=256", "max_iterations=6", "train.params.config.minibatch_size=4096"
    )
    *middle, last = progress.steps_per_s[1:]  # (the first epoch also builds the agent's graphs and tensors)
    assert last < 3 * statistics.median(middle), progress.steps_per_s


def test_an_epoch_is_reported_once_the_next_is_queued_with_its_own_episodes(tmp_path, monkeypatch):
    """The epoch's report (TensorBoard, the progress line) is host work that must not leave the GPU idle: it is made
    once the next epoch's rollout and update are queued and before that epoch's episodes are counted, so it shows the
    meters as they were at its own epoch's end; the last epoch is reported when the run stops."""
    from harness.rl.rollout import SyncFreeRollout
    from harness.rl.seam import AlgoObserver
    from harness.rl.update import SyncFreeUpdate

    events, counted, reported = [], [], []
    queue_epoch, record = SyncFreeUpdate.queue_epoch, SyncFreeRollout.record_finished_episodes

    def queued(self):
        events.append("queued")
        return queue_epoch(self)

    def recorded(self):
        record(self)
        events.append("counted")
        counted.append(self.game_rewards.get_mean()[0] if self.game_rewards.current_size else None)

    class Recorder(AlgoObserver):
        def after_init(self, algo) -> None:
            self.algo = algo

        def after_print_stats(self, frame, epoch_num, total_time) -> None:
            events.append(epoch_num)
            rewards = self.algo.game_rewards
            reported.append(rewards.get_mean()[0] if rewards.current_size else None)

    monkeypatch.setattr(SyncFreeUpdate, "queue_epoch", queued)
    monkeypatch.setattr(SyncFreeRollout, "record_finished_episodes", recorded)
    monkeypatch.chdir(tmp_path)
    train_with_observers(
        "reported", [Recorder()], "num_envs=16", "max_iterations=4", "train.params.config.minibatch_size=256"
    )
    assert events == ["queued", "counted", "queued", 1, "counted", "queued", 2, "counted", "queued", 3, "counted", 4]
    assert reported == counted and any(r is not None for r in reported), (reported, counted)


def test_sigma_starts_training_from_that_fixed_sigma(tmp_path):
    result = run_in_process("train.py", *TINY, "max_iterations=1", "sigma=-2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (checkpoint,) = (tmp_path / "runs" / "Ant" / "nn").glob("last_*.pth")
    sigma = torch.load(checkpoint, weights_only=True)["model"]["a2c_network.sigma"]
    assert torch.allclose(sigma, torch.full_like(sigma, -2.0), atol=0.05), sigma  # one epoch of small Adam steps


def test_capture_video_writes_videos_of_env_0_while_training(tmp_path):
    """Every 20 env steps, 10 steps of env 0: 48 steps (3 epochs of 16) make two whole videos."""
    import imageio.v3 as iio

    video = ["capture_video=True", "capture_video_freq=20", "capture_video_len=10"]
    result = run_script("train.py", "task=Cartpole", "num_envs=16", "max_iterations=3", *CPU, *video, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    videos = tmp_path / "runs" / "Cartpole" / "videos"
    assert sorted(p.name for p in videos.iterdir()) == ["train_ep1.mp4", "train_ep2.mp4"]
    for path in videos.iterdir():
        frames = iio.imread(path)
        assert frames.shape == (10, 480, 640, 3)
        assert (frames[0].astype(int) - frames[-1]).__abs__().mean() > 0.1, "the pole moves"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "runs" / "Cartpole" / "summaries"), size_guidance={"images": 0})
    events.Reload()
    gifs = events.Images("videos/train")
    assert len(gifs) == 2 and all(gif.encoded_image_string[:6] == b"GIF89a" for gif in gifs)
    assert (gifs[0].width, gifs[0].height) == (320, 240)
