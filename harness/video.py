"""Off-screen video of one env, drawn by MuJoCo Warp's own ray-traced renderer (no display, no OpenGL)."""

from __future__ import annotations

import multiprocessing
import types
from concurrent.futures import Future, ProcessPoolExecutor
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


# Frames drawn at once, one world each (their RGB buffers alone take about 0.5 GB at 640 x 480): a few dozen Warp
# launches draw a whole training video, where one frame at a time took thousands.
FRAMES_PER_BATCH = 100


class Renderer:
    """Draws poses of one model from its tracking camera, `batch` frames at a time; build once, draw many videos."""

    def __init__(self, model: mujoco.MjModel, device: torch.device | str, batch: int = FRAMES_PER_BATCH) -> None:
        self.batch = batch
        self.device = wp.get_device(str(device))
        try:
            with wp.ScopedDevice(self.device):
                self.model = mjw.put_model(model)
                self.data = mjw.make_data(model, nworld=batch)
                self.context = mjw.create_render_context(
                    model,
                    nworld=batch,
                    cam_res=(WIDTH, HEIGHT),
                    render_rgb=True,
                    render_depth=False,
                    cam_active=[CAMERA],
                    use_shadows=True,
                )
                self.rgb = wp.zeros((batch, HEIGHT, WIDTH), dtype=wp.vec3f)
        except Exception as error:  # no renderer on this device: say so in one line
            raise UserError(f"video: MuJoCo Warp cannot render on {self.device}: {error}".splitlines()[0]) from None

    def frames(self, qpos: torch.Tensor) -> np.ndarray:
        """The poses `qpos` (frames, nq), ready on their device, as RGB frames (frames, HEIGHT, WIDTH, 3) uint8."""
        batches = []
        for start in range(0, len(qpos), self.batch):
            poses = qpos[start : start + self.batch].contiguous()
            with wp.ScopedDevice(self.device):  # all on Warp's stream of the device, in order
                wp.copy(self.data.qpos, wp.from_torch(poses), count=poses.numel())
                mjw.fwd_kinematics(self.model, self.data)  # where the bodies and the camera are: all a frame needs
                mjw.refit_bvh(self.model, self.data, self.context)
                mjw.render(self.model, self.data, self.context)
                mjw.get_rgb(self.context, 0, self.rgb)
                if self.device.is_cuda:
                    wp.synchronize_stream(wp.get_stream(self.device))
            rgb = wp.to_torch(self.rgb)[: len(poses)]
            batches.append((rgb.clamp(0.0, 1.0) * 255).to(torch.uint8).cpu().numpy())
        return np.concatenate(batches)

    def write(self, qpos: torch.Tensor, fps: float, path: Path) -> np.ndarray:
        """Render `qpos` into an MP4 at `path` (written atomically); the frames, for whoever shows them elsewhere."""
        import imageio

        frames = self.frames(qpos)
        path.parent.mkdir(parents=True, exist_ok=True)
        # ffmpeg picks the container from the extension, so the temporary file keeps .mp4
        with (
            atomic_path(path, suffix=".mp4") as tmp,
            imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=16) as writer,
        ):
            for frame in frames:
                writer.append_data(frame)
        return frames


def write_video(model: mujoco.MjModel, qpos: torch.Tensor, fps: float, path: Path) -> Path:
    """Render the poses `qpos` (frames, nq), just recorded on this thread, into an MP4 at `path`."""
    if qpos.is_cuda:  # they were written on torch's stream, the renderer reads them on Warp's
        torch.cuda.current_stream(qpos.device).synchronize()
    Renderer(model, qpos.device, batch=min(len(qpos), FRAMES_PER_BATCH)).write(qpos, fps, path)
    return path


class RenderProcess:
    """Draws videos in a process of its own (training's videos), so that the renderer's GPU code is never loaded
    into the training process: code loaded into a CUDA context slowed that context's own small kernels by 7-9%, for
    the rest of the run, and a renderer built in another process slowed them by nothing
    (bench/results/2026-11-26-capture-video-H100.md). Each video arrives as poses on the host (a few KB)."""

    def __init__(self, device: str) -> None:
        spawn = multiprocessing.get_context("spawn")  # never fork a process that holds a CUDA context
        # Started at once: its imports and its CUDA context are made while the training process builds its envs.
        self.pool = ProcessPoolExecutor(1, mp_context=spawn, initializer=_start, initargs=(device,))
        self.pool.submit(int)  # a process pool starts its process with the first job

    def prepare(self, model: mujoco.MjModel, batch: int) -> None:
        """Build the renderer for `model` (`batch` frames at a time) before the first video is due."""
        self.pool.submit(_build, model, batch)

    def submit(self, qpos: np.ndarray, fps: float, path: Path) -> Future:
        """Render into an MP4 at `path`; the future's result: the video as a GIF at half size, its height, its width."""
        return self.pool.submit(_render_file, qpos, fps, path)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


# The render process's own state: its device, and its renderer once built.
_child = types.SimpleNamespace(device=None, renderer=None, error=None)


def _start(device: str) -> None:
    _child.device = device
    wp.init()
    torch.zeros(1, device=device)  # the CUDA context


def _build(model: mujoco.MjModel, batch: int) -> None:
    try:
        _child.renderer = Renderer(model, _child.device, batch)
    except UserError as error:  # said once per video, as that video's failure
        _child.error = error


def _render_file(qpos: np.ndarray, fps: float, path: Path) -> tuple[bytes, int, int]:
    import imageio.v3 as iio

    if _child.error is not None:
        raise _child.error
    frames = _child.renderer.write(torch.from_numpy(qpos).to(_child.device), fps, path)[:, ::2, ::2]
    gif = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000.0 / fps, loop=0)
    return gif, frames.shape[1], frames.shape[2]
