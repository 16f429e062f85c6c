"""capture_video=True: videos of env 0 while training, as IsaacGymEnvs records them (every capture_video_freq env
steps, capture_video_len steps long), drawn by MuJoCo Warp's renderer off the training thread."""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from harness import graphs
from harness.rl.seam import AlgoObserver


class TrainingVideo(AlgoObserver):
    """Keeps env 0's poses on the device while a video is due (a copy per env step, no host sync), then renders
    them into <videos>/train_ep<N>.mp4 on a worker thread while training goes on; logs each video to W&B when a
    W&B run is active. `close()` waits for the last one."""

    def __init__(self, freq: int, length: int, videos: Path) -> None:
        super().__init__()
        self.freq, self.length, self.videos = freq, min(length, freq), videos
        self.steps = 0
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="training-video")
        self.pending: list[Future] = []

    def after_init(self, algo) -> None:
        self.algo, task = algo, algo.vec_env.env
        self.sim, self.fps = task.sim, 1.0 / (task.cfg["sim"]["dt"] * task.cfg["env"].get("controlFrequencyInv", 1))
        self.poses = torch.zeros(self.length, self.sim.qpos.shape[1], device=self.sim.qpos.device)

    def process_infos(self, infos: dict, done_indices) -> None:
        frame = self.steps % self.freq
        self.steps += 1
        if frame < self.length:
            self.poses[frame].copy_(self.sim.qpos[0])
        if frame == self.length - 1:
            path = self.videos / f"train_ep{self.algo.epoch_num}.mp4"
            self.pending.append(self.worker.submit(_render, self.sim.mj_model, self.poses.clone(), self.fps, path))

    def close(self) -> list[str]:
        """Wait for the videos still rendering; what went wrong with any (one line each)."""
        self.worker.shutdown(wait=True)
        return [str(future.exception()).splitlines()[0] for future in self.pending if future.exception() is not None]


def _render(model, poses: torch.Tensor, fps: float, path: Path) -> Path:
    from harness.video import write_video

    with graphs.CAPTURE_LOCK:  # no frame of it may land in a graph the training thread is capturing
        write_video(model, poses, fps, path)
    wandb = sys.modules.get("wandb")  # only if a W&B run is going (wandb_activate=True imported it)
    if wandb is not None and wandb.run is not None:
        wandb.run.log({"videos/train": wandb.Video(str(path), format="mp4")})
    return path
