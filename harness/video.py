"""Off-screen video of one env, drawn by MuJoCo Warp's own ray-traced renderer (no display, no OpenGL)."""

from __future__ import annotations

from pathlib import Path

import mujoco
import mujoco_warp as mjw
import numpy as np
import torch
import warp as wp

from harness.errors import UserError
from harness.runs import atomic_path

WIDTH, HEIGHT = 640, 480
CAMERA = "track"


def steps_per_second(task_cfg) -> float:
    """A task's env steps per simulated second (its config's sim.dt and env.controlFrequencyInv): a video's fps."""
    return 1.0 / (task_cfg["sim"]["dt"] * task_cfg["env"].get("controlFrequencyInv", 1))


def write_video(model: mujoco.MjModel, qpos: torch.Tensor, fps: float, path: Path) -> Path:
    """Render the poses `qpos` (frames, nq) from the model's tracking camera into an MP4 at `path`."""
    import imageio

    device = wp.get_device(str(qpos.device))
    try:
        with wp.ScopedDevice(device):
            render_model = mjw.put_model(model)
            data = mjw.make_data(model, nworld=1)
            context = mjw.create_render_context(
                model,
                nworld=1,
                cam_res=(WIDTH, HEIGHT),
                render_rgb=True,
                render_depth=False,
                cam_active=[CAMERA],
                use_shadows=True,
            )
            rgb = wp.zeros((1, HEIGHT, WIDTH), dtype=wp.vec3f)
    except Exception as error:  # no renderer on this device: say so in one line
        raise UserError(f"video=True: MuJoCo Warp cannot render on {device}: {error}".splitlines()[0]) from None
    pose = wp.to_torch(data.qpos)
    path.parent.mkdir(parents=True, exist_ok=True)
    # ffmpeg picks the container from the extension, so the temporary file keeps .mp4
    with (
        atomic_path(path, suffix=".mp4") as tmp,
        imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=16) as writer,
    ):
        for frame in qpos:
            with wp.ScopedDevice(device):
                pose.copy_(frame[None])
                mjw.forward(render_model, data)
                mjw.refit_bvh(render_model, data, context)
                mjw.render(render_model, data, context)
                mjw.get_rgb(context, 0, rgb)
            writer.append_data((np.clip(rgb.numpy()[0], 0.0, 1.0) * 255).astype(np.uint8))
    return path
