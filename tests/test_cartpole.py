"""The Cartpole task on the CPU: contract, reward, failure and time-out resets, and a real training run."""

from __future__ import annotations

import pytest
import torch
from conftest import CPU, compose_config, make_cpu_task, run_script

from harness.config import prepare_config


@pytest.fixture(scope="module")
def cartpole():
    return make_cpu_task("Cartpole", 4)


def test_contract_and_upstream_config(cartpole):
    cfg = prepare_config(compose_config("task=Cartpole", *CPU))
    assert cfg.task.env.numEnvs == 512 and cfg.train.params.config.max_epochs == 100
    assert cfg.train.params.config.minibatch_size == 8192 and cfg.train.params.network.mlp.units == [32, 32]
    obs = cartpole.reset()["obs"]
    assert obs.shape == (4, 4) and cartpole.num_actions == 1 and cartpole.max_episode_length == 500
    assert (obs[:, [0, 2]].abs() <= 0.1).all() and (obs[:, [1, 3]].abs() <= 0.25).all()


def test_the_pole_is_damped_as_isaac_gym_damps_a_link():
    """Isaac Gym's default angular damping, 0.5/s on the pole's angular velocity, as a hinge damping: 0.5 x the pole's
    inertia about the hinge, by hand for a 1 kg, 0.04 x 0.06 x 1.0 m box whose centre is 0.47 m from the hinge."""
    by_hand = 1.0 * (0.06**2 + 1.0**2) / 12 + 1.0 * 0.47**2
    model = make_cpu_task("Cartpole", 1).sim.mj_model
    assert model.dof_damping[0] == 0.0 and model.dof_damping[1] == pytest.approx(0.5 * by_hand, rel=1e-4)


def test_the_action_pushes_the_cart_with_max_effort(cartpole):
    cartpole.reset()
    cartpole.sim.qpos.zero_()
    cartpole.sim.qvel.zero_()
    obs = cartpole.step(torch.ones(4, 1))[0]["obs"]
    # 400 N for one 1/60 s step on the 1 kg cart, whose free-swinging 1 kg pole adds only about 0.28 kg of effective
    # mass (its inertia about the hinge): about 314 m/s^2, so about 5.2 m/s, which the observation clips to 5.
    assert 4.8 < cartpole.sim.qvel[0, 0] < 5.6 and cartpole.sim.ctrl[0, 0] == 1.0
    assert obs[0, 1] == 5.0


def test_reward_and_failure_resets(cartpole):
    cartpole.reset()
    cartpole.sim.qpos[:] = torch.tensor([[0.0, 0.3], [3.5, 0.0], [0.0, 2.0], [0.0, 0.0]])
    cartpole.sim.qvel.zero_()
    _, reward, done, extras = cartpole.step(torch.zeros(4, 1))
    assert done.tolist() == [False, True, True, False] and not extras["time_outs"].any()
    assert reward[1] == reward[2] == -2.0
    assert 0.85 < reward[0] < 1.0 - 0.3**2, "1 - angle^2 - small velocity costs, the pole tilted 0.3 rad"
    assert reward[3] == pytest.approx(1.0, abs=1e-3), "upright and still: the full reward"


def test_time_out_at_step_499(cartpole):
    cartpole.reset()
    cartpole.progress_buf.fill_(498)
    cartpole.sim.qpos.zero_()
    cartpole.sim.qvel.zero_()
    _, _, done, extras = cartpole.step(torch.zeros(4, 1))
    assert done.all() and extras["time_outs"].all()


def test_train_and_play_cartpole_end_to_end(tmp_path):
    train = [
        "task=Cartpole",
        "num_envs=32",
        "max_iterations=3",
        *CPU,
        "train.params.config.minibatch_size=512",
        "train.params.config.save_best_after=1",
        "train.params.config.save_frequency=1",
    ]
    result = run_script("train.py", *train, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "runs" / "Cartpole" / "nn" / "Cartpole.pth").is_file()
    played = run_script(
        "play.py", "task=Cartpole", "checkpoint=auto", "num_envs=8", *CPU, "num_episodes=8", cwd=tmp_path
    )
    assert played.returncode == 0 and "Play report: Cartpole" in played.stdout, played.stderr[-2000:]
