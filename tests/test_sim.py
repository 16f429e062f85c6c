"""The MuJoCo Warp simulator module on the CPU: views, masked resets, captured steps."""

from __future__ import annotations

import gc
from pathlib import Path

import mujoco
import pytest
import torch
import warp as wp

from harness.sim.mjwarp import MjWarpSim, load_mjcf
from harness.tasks.ant import Ant
from harness.video import CAMERA

ASSETS = Path(__file__).resolve().parents[1] / "harness" / "tasks" / "assets"

SIM_CFG = {"dt": 0.0166, "substeps": 2, "up_axis": "z", "gravity": [0.0, 0.0, -9.81]}
STANDING = torch.tensor([0.0, 0.6, 0.0, -0.6, 0.0, -0.6, 0.0, 0.6])


def make_sim(num_worlds: int = 6, capture: bool = True) -> MjWarpSim:
    sim = MjWarpSim(
        load_mjcf(Ant.asset, SIM_CFG),
        num_worlds=num_worlds,
        device="cpu",
        substeps=2,
        nconmax=Ant.nconmax,
        njmax=Ant.njmax,
        capture=capture,
    )
    sim.qpos[:, 7:] = STANDING
    return sim


def settle(sims, steps: int, seed: int = 0) -> None:
    """Step several sims with the same random controls."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ctrl = torch.rand(sims[0].ctrl.shape, generator=generator) * 2 - 1
        for sim in sims:
            sim.ctrl.copy_(ctrl)
            sim.step()


def test_state_views_are_zero_copy():
    sim = make_sim()
    assert sim.qpos.data_ptr() == sim.data.qpos.ptr and sim.qpos.shape == (6, 15)
    assert sim.qvel.shape == (6, 14) and sim.ctrl.shape == (6, 8) and sim.sensordata.shape == (6, 24)
    assert sim.qpos.dtype == torch.float32 and sim.qpos.device.type == "cpu"
    sim.qpos[2, 2] = 1.5  # a write through the view is a write into the simulator
    assert wp.to_torch(sim.data.qpos)[2, 2].item() == 1.5


def test_timestep_and_gravity_come_from_the_sim_config():
    model = load_mjcf(Ant.asset, {**SIM_CFG, "gravity": [0.0, 0.0, -3.0]})
    assert model.opt.timestep == pytest.approx(0.0083) and model.opt.gravity[2] == pytest.approx(-3.0)


def test_captured_step_equals_eager_step():
    eager, captured = make_sim(capture=False), make_sim(capture=True)
    settle([eager, captured], 60)
    assert torch.equal(eager.qpos, captured.qpos) and torch.equal(eager.sensordata, captured.sensordata)


def test_no_garbage_collection_runs_while_the_sim_records_its_graphs():
    """A collection inside a capture frees garbage onto the capturing stream: on CUDA a pinned tensor's free then
    leaves torch an event that never happens, and the next pinned allocation fails (harness.graphs)."""
    cpu, collections = wp.get_device("cpu"), []

    def note_collection(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(cpu.is_capturing)

    thresholds = gc.get_threshold()
    gc.set_threshold(1)  # a collection at nearly every allocation, so that any the capture allows happens there
    gc.callbacks.append(note_collection)
    try:
        make_sim(num_worlds=2)
    finally:
        gc.callbacks.remove(note_collection)
        gc.set_threshold(*thresholds)
    assert collections, "collections ran while the sim was built"
    assert not any(collections), f"{sum(collections)} of {len(collections)} collections ran inside a capture"


def test_standing_ant_rests_on_its_four_feet():
    sim = make_sim(num_worlds=2, capture=False)
    for _ in range(100):
        sim.step()
    assert torch.allclose(sim.qpos[:, 2], torch.full((2,), 0.36), atol=0.01)
    nacon = sim.data.nacon.numpy()[0]
    geoms = {tuple(pair) for pair in sim.data.contact.geom.numpy()[:nacon]}
    feet = {sim.mj_model.geom(f"{leg}_foot").id for leg in ("front_left", "front_right", "back_left", "back_right")}
    assert geoms == {(0, foot) for foot in feet}, "only the four lower legs touch the floor (geom 0)"
    vertical_force = sim.sensordata.view(2, 4, 6)[..., 2]
    assert (vertical_force < -1.0).all(), "each foot sensor carries weight"


def test_robot_geoms_never_collide_with_each_other():
    model = make_sim(num_worlds=1).mj_model
    robot = range(1, model.ngeom)  # geom 0 is the floor
    for i in robot:
        for j in robot:
            assert not (model.geom_contype[i] & model.geom_conaffinity[j]), (model.geom(i).name, model.geom(j).name)
        assert model.geom_contype[i] & model.geom_conaffinity[0], "every robot geom collides with the floor"


@pytest.mark.parametrize("reset_worlds", [[0, 3], [1, 4]])
def test_masked_reset_leaves_other_worlds_untouched(reset_worlds):
    """Also with world 0 in the mask, which zeroes MuJoCo Warp's shared contact count (issue 3572)."""
    sim, twin = make_sim(), make_sim()
    settle([sim, twin], 80)
    mask = torch.zeros(6, dtype=torch.bool)
    mask[reset_worlds] = True
    before = {name: getattr(sim, name).clone() for name in ("qpos", "qvel", "sensordata")}
    sim.reset(mask)
    for name, value in before.items():
        assert torch.equal(getattr(sim, name)[~mask], value[~mask]), name
    assert torch.equal(sim.qvel[mask], torch.zeros_like(sim.qvel[mask]))
    assert torch.allclose(sim.qpos[mask, :3], torch.tensor([0.0, 0.0, 0.44]))
    # After the next step (whose collision pass recounts contacts) the untouched worlds must match a twin
    # that never saw the reset: their contacts were not lost.
    sim.qpos[mask] = twin.qpos[mask]
    sim.qvel[mask] = twin.qvel[mask]
    settle([sim, twin], 3, seed=1)
    assert torch.equal(sim.qpos[~mask], twin.qpos[~mask])
    assert torch.equal(sim.sensordata[~mask], twin.sensordata[~mask])


@pytest.mark.parametrize("asset", sorted(ASSETS.glob("*.xml")), ids=lambda path: path.name)
def test_every_task_model_has_the_camera_videos_are_drawn_from(asset):
    model = mujoco.MjModel.from_xml_path(str(asset))
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA) >= 0, f"{asset.name} has no camera {CAMERA}"
