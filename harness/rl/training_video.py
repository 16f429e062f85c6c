"""capture_video=True: videos of env 0 while training, as IsaacGymEnvs records them (every capture_video_freq env
steps, capture_video_len steps long), drawn by MuJoCo Warp's renderer off the training thread."""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import torch

from harness import graphs
from harness.rl.seam import AlgoObserver


class TrainingVideo(AlgoObserver):
    """Keeps env 0's poses on the device while a video is due (a copy per env step, no host sync), then renders
    them into <videos>/train_ep<N>.mp4 on a worker thread while training goes on; logs each video to TensorBoard
    and, when a W&B run is active, to W&B. `close()` waits for the last one."""

    def __init__(self, freq: int, length: int, videos: Path) -> None:
        super().__init__()
        self.freq, self.length, self.videos = freq, min(length, freq), videos
        self.steps = 0
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="training-video")
        self.pending: list[Future] = []
        self.renderer = None  # built by the worker for its first video, and kept

    def after_init(self, algo) -> None:
        self.algo, task = algo, algo.vec_env.env
        from harness.video import steps_per_second

        self.sim, self.fps = task.sim, steps_per_second(task.cfg)
        self.poses = torch.zeros(self.length, self.sim.qpos.shape[1], device=self.sim.qpos.device)

    def process_infos(self, infos: dict, done_indices) -> None:
        frame = self.steps % self.freq
        self.steps += 1
        if frame < self.length:
            self.poses[frame].copy_(self.sim.qpos[0])
        if frame == self.length - 1:
            path = self.videos / f"train_ep{self.algo.epoch_num}.mp4"
            poses = self.poses.clone()
            # The worker waits for this point of the training stream, not the training thread for anything.
            ready = torch.cuda.Event() if poses.is_cuda else None
            if ready is not None:
                ready.record()
            video = Video(poses, ready, self.fps, path)
            self.pending.append(self.worker.submit(self._render, video, self.algo.writer, self.algo.frame))

    def close(self) -> list[str]:
        """Wait for the videos still rendering; what went wrong with any (one line each)."""
        self.worker.shutdown(wait=True)
        errors = (future.exception() for future in self.pending)
        return [str(error).splitlines()[0] for error in errors if error is not None]

    def _render(self, video: Video, writer, frame: int) -> Path:
        """On the worker thread: draw the video, write its MP4, log it."""
        from harness.video import Renderer

        if video.ready is not None:
            video.ready.synchronize()
        with graphs.CAPTURE_LOCK:  # no frame of it may land in a graph the training thread is capturing
            if self.renderer is None:
                self.renderer = Renderer(self.sim.mj_model, video.poses.device, batch=self.length)
            frames = self.renderer.write(video.poses, video.fps, video.path)
        if writer is not None:
            _to_tensorboard(writer, frames, video.fps, frame)
        wandb = sys.modules.get("wandb")  # only if a W&B run is going (wandb_activate=True imported it)
        if wandb is not None and wandb.run is not None:
            wandb.run.log({"videos/train": wandb.Video(str(video.path), format="mp4")})
        return video.path


class Video(NamedTuple):
    """One video due: env 0's poses (frames, nq) on the device, the event after which they are there (CUDA),
    frames per second, the file."""

    poses: torch.Tensor
    ready: torch.cuda.Event | None
    fps: float
    path: Path


def _to_tensorboard(writer, frames, fps: float, frame: int) -> None:
    """The video as an animated GIF at half size in TensorBoard's image panel, tag videos/train: what the writer's
    add_video writes, without its dependency on moviepy 1.x. rl_games' writer is tensorboardX's."""
    import imageio.v3 as iio
    from tensorboardX.proto.summary_pb2 import Summary

    frames = frames[:, ::2, ::2]
    gif = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000.0 / fps, loop=0)
    image = Summary.Image(height=frames.shape[1], width=frames.shape[2], colorspace=3, encoded_image_string=gif)
    # SummaryWriter has no public call for a ready-made summary; its file writer (thread-safe: a queue) has
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag="videos/train", image=image)]), frame)
