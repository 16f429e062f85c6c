"""Config composition, overrides, resolvers and IsaacGymEnvs-shaped YAML files."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import CPU, ROOT, compose_config
from omegaconf import OmegaConf

from harness.config import prepare_config
from harness.errors import UserError
from harness.rl.trainer import rl_games_params


def test_defaults_compose_to_ant_with_upstream_values():
    cfg = prepare_config(compose_config(*CPU))
    assert cfg.task_name == "Ant" and cfg.physics_engine == "mjwarp"
    assert cfg.task.env.numEnvs == 4096 and cfg.task.sim.dt == pytest.approx(0.0166)
    config = cfg.train.params.config
    assert config.max_epochs == 500 and config.name == "Ant" and config.num_actors == 4096
    assert config.minibatch_size == 32768 and config.horizon_length == 16
    assert cfg.train.params.load_checkpoint is False


def test_top_level_overrides_reach_task_and_train():
    cfg = prepare_config(compose_config("num_envs=64", "max_iterations=7", "experiment=walk", "seed=3", *CPU))
    assert cfg.task.env.numEnvs == 64 and cfg.train.params.config.num_actors == 64
    assert cfg.train.params.config.max_epochs == 7
    assert cfg.train.params.config.name == "walk" and cfg.train.params.seed == 3


def test_nested_overrides():
    cfg = prepare_config(compose_config("task.env.episodeLength=50", "train.params.config.gamma=0.9", *CPU))
    assert cfg.task.env.episodeLength == 50 and cfg.train.params.config.gamma == 0.9


def test_random_seed_is_drawn_and_recorded():
    first = prepare_config(compose_config("seed=-1", *CPU)).seed
    second = prepare_config(compose_config("seed=-1", *CPU)).seed
    assert first >= 0 and second >= 0 and first != second


def test_resolvers_behave_as_upstream():
    cfg = OmegaConf.create(
        {
            "eq": "${eq:GPU,gpu}",
            "ne": "${eq:cpu,gpu}",
            "contains": '${contains:"CUDA","cuda:0"}',
            "if_true": "${if:True,a,b}",
            "if_empty": "${if:'',a,b}",
            "default": "${resolve_default:4096,''}",
            "given": "${resolve_default:4096,64}",
        }
    )
    assert OmegaConf.to_container(cfg, resolve=True) == {
        "eq": True,
        "ne": False,
        "contains": True,
        "if_true": "a",
        "if_empty": "b",
        "default": 4096,
        "given": 64,
    }


BAD_VALUES = [
    "num_envs=0",
    "num_envs=-5",
    "num_envs=many",
    "physics_engine=bullet",
    "sim_device=tpu",
    "max_iterations=0",
    "max_iterations=-1",
    "max_iterations=ten",
]


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_bad_values_are_user_errors(bad):
    key = bad.split("=")[0]
    with pytest.raises(UserError):
        prepare_config(compose_config(bad, *[o for o in CPU if not o.startswith(key + "=")]))


def test_upstream_shaped_files_load_unchanged(tmp_path):
    """A task and train YAML as IsaacGymEnvs writes them (physx block, seq_len) compose and run here."""
    shutil.copytree(ROOT / "cfg", tmp_path / "cfg")
    train_file = tmp_path / "cfg" / "train" / "AntPPO.yaml"
    train = yaml.safe_load(train_file.read_text())
    train["params"]["config"]["seq_len"] = train["params"]["config"].pop("seq_length")  # upstream's older key
    train_file.write_text(yaml.safe_dump(train))
    cfg = prepare_config(compose_config("num_envs=16", *CPU, config_dir=tmp_path / "cfg"))
    assert cfg.task.sim.physx.use_gpu is False  # ${contains:"cuda",${....sim_device}} resolved against cpu
    assert cfg.task.sim.use_gpu_pipeline is True
    params = rl_games_params(cfg, "Ant")
    assert params["config"]["seq_len"] == 4 and params["config"]["minibatch_size"] == 256


def test_ignored_settings_are_named_once(capsys):
    from conftest import make_ant

    make_ant(2)
    lines = [line for line in capsys.readouterr().out.splitlines() if "no use for" in line]
    assert len(lines) == 1
    assert "sim.physx" in lines[0] and "env.envSpacing" in lines[0] and "env.headingWeight" not in lines[0]


def test_minibatch_that_does_not_divide_the_batch_is_refused():
    cfg = prepare_config(compose_config("num_envs=10", "train.params.config.minibatch_size=64", *CPU))
    with pytest.raises(UserError, match="does not divide"):
        rl_games_params(cfg, "Ant")


def test_a_num_envs_beyond_the_devices_free_memory_is_refused_with_the_estimate():
    from harness.tasks import check_memory

    check_memory("Ant", 4096, 76 * 1024, free_bytes=80 * 2**30, device="cuda:0")  # fits: nothing said
    with pytest.raises(UserError) as refused:
        check_memory("Ant", 2_000_000, 76 * 1024, free_bytes=80 * 2**30, device="cuda:0")
    assert str(refused.value) == (
        "num_envs=2000000 needs about 145.0 GiB on cuda:0 for Ant (about 76 KiB per env), "
        "and 80.0 GiB are free: use num_envs=1103764 or fewer"
    )


def test_every_task_has_its_measured_memory_per_env_so_gpu_runs_are_checked():
    from harness.tasks import TASKS, registered_class

    for name in TASKS:
        assert registered_class(name).gpu_bytes_per_env > 0, name


@pytest.mark.parametrize("key", ["capture_video_freq", "capture_video_len"])
def test_capture_video_settings_are_whole_numbers_of_steps(key):
    assert prepare_config(compose_config("capture_video=True", f"{key}=5", *CPU))[key] == 5
    with pytest.raises(UserError, match=f"{key} must be a whole number of env steps >= 1, got 0"):
        prepare_config(compose_config("capture_video=True", f"{key}=0", *CPU))


def test_sigma_is_a_number_for_a_network_with_a_fixed_sigma():
    assert prepare_config(compose_config("sigma=-1.5", *CPU)).sigma == -1.5
    with pytest.raises(UserError, match="sigma='wide' is not a number"):
        prepare_config(compose_config("sigma=wide", *CPU))
    with pytest.raises(UserError, match="Ant's network learns its own"):
        prepare_config(compose_config("sigma=0", "train.params.network.space.continuous.fixed_sigma=False", *CPU))
