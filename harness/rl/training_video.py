"""capture_video=True: videos of env 0 while training, as IsaacGymEnvs records them (every capture_video_freq env
steps, capture_video_len steps long), drawn by MuJoCo Warp's renderer in a process of its own."""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import torch

from harness.rl.seam import AlgoObserver


class TrainingVideo(AlgoObserver):
    """Keeps env 0's poses on the device while a video is due (a copy per env step, no host sync), then has them
    rendered into <videos>/train_ep<N>.mp4 by a render process (harness.video.RenderProcess) while training goes
    on; logs each video to TensorBoard and, when a W&B run is active, to W&B. `close()` waits for the last one."""

    reads_each_step = True  # the simulator's poses at each env step: the rollout stays step by step (no graph)

    def __init__(self, freq: int, length: int, videos: Path, device: str) -> None:
        from harness.video import RenderProcess

        super().__init__()
        self.render_process = RenderProcess(device)
        self.freq, self.length, self.videos = freq, min(length, freq), videos
        self.steps = 0
        # Waits for each video's poses and its rendering, then logs it: the training thread waits for nothing.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="training-video")
        self.pending: list[Future] = []

    def after_init(self, algo) -> None:
        from harness.video import steps_per_second

        self.algo, task = algo, algo.vec_env.env
        self.sim, self.fps = task.sim, steps_per_second(task.cfg)
        self.poses = torch.zeros(self.length, self.sim.qpos.shape[1], device=self.sim.qpos.device)
        self.render_process.prepare(self.sim.mj_model, batch=self.length)

    def process_infos(self, infos: dict, done_indices) -> None:
        frame = self.steps % self.freq
        self.steps += 1
        if frame < self.length:
            self.poses[frame].copy_(self.sim.qpos[0])
        if frame == self.length - 1:
            path = self.videos / f"train_ep{self.algo.epoch_num}.mp4"
            # Copied to the host in stream order; the worker waits for the event, the training thread does not.
            ready = None
            if self.poses.is_cuda:
                poses, ready = self.poses.to("cpu", non_blocking=True), torch.cuda.Event()  # into pinned memory
                ready.record()
            else:
                poses = self.poses.clone()
            video = Video(poses, ready, self.fps, path)
            self.pending.append(self.worker.submit(self._finish, video, self.algo.writer, self.algo.frame))

    def close(self) -> list[str]:
        """Wait for the videos still rendering; what went wrong with any (one line each)."""
        self.worker.shutdown(wait=True)
        self.render_process.close()
        errors = (future.exception() for future in self.pending)
        return [str(error).splitlines()[0] for error in errors if error is not None]

    def _finish(self, video: Video, writer, frame: int) -> Path:
        """On the worker thread: hand the poses to the render process, then log the video it made."""
        if video.ready is not None:
            video.ready.synchronize()
        gif = self.render_process.submit(video.poses.numpy(), video.fps, video.path).result()
        if writer is not None:
            _to_tensorboard(writer, *gif, frame)
        wandb = sys.modules.get("wandb")  # only if a W&B run is going (wandb_activate=True imported it)
        if wandb is not None and wandb.run is not None:
            wandb.run.log({"videos/train": wandb.Video(str(video.path), format="mp4")})
        return video.path


class Video(NamedTuple):
    """One video due: env 0's poses (frames, nq) on the host, the event after which they are there (CUDA),
    frames per second, the file."""

    poses: torch.Tensor
    ready: torch.cuda.Event | None
    fps: float
    path: Path


def _to_tensorboard(writer, gif: bytes, height: int, width: int, frame: int) -> None:
    """The video as an animated GIF (half size) in TensorBoard's image panel, tag videos/train: what the writer's
    add_video writes, without its dependency on moviepy 1.x. rl_games' writer is tensorboardX's."""
    from tensorboardX.proto.summary_pb2 import Summary

    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
    # SummaryWriter has no public call for a ready-made summary; its file writer (thread-safe: a queue) has
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag="videos/train", image=image)]), frame)
