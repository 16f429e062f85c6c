"""Test double standing in for IsaacGymEnvs (not Isaac Gym): `make` returns a VecTask meeting the documented
contract (obs dict from reset and step, rewards, resets, extras['time_outs']) with trivial dynamics, and writes
the arguments it was called with to the JSON file named by ISAACGYM_DOUBLE_LOG."""

import json
import os

import gymnasium
import numpy as np
import torch

EPISODE_LENGTH = 10


class DoubleVecTask:
    """Observations count the steps of the episode; reward 1 a step; every episode times out after 10 steps."""

    def __init__(self, cfg: dict, num_envs: int, rl_device: str) -> None:
        self.cfg, self.num_envs, self.device = cfg, num_envs, torch.device(rl_device)
        self.num_obs, self.num_actions = 6, 3
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.num_obs,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.num_actions,), np.float32)
        self.progress = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    def _obs(self):
        return {"obs": self.progress.float()[:, None].repeat(1, self.num_obs)}

    def reset(self):
        self.progress.zero_()
        return self._obs()

    def step(self, actions):
        assert actions.shape == (self.num_envs, self.num_actions) and actions.device == self.device
        self.progress += 1
        time_outs = self.progress >= EPISODE_LENGTH
        self.progress[time_outs] = 0
        reward = torch.ones(self.num_envs, device=self.device)
        return self._obs(), reward, time_outs.clone(), {"time_outs": time_outs}


def make(  # noqa: PLR0917 - IsaacGymEnvs' own positional signature
    seed,
    task,
    num_envs,
    sim_device,
    rl_device,
    graphics_device_id,
    headless,
    multi_gpu=False,
    virtual_screen_capture=False,
    force_render=True,
    cfg=None,
):
    called = {
        "seed": seed,
        "task": task,
        "num_envs": num_envs,
        "sim_device": sim_device,
        "rl_device": rl_device,
        "graphics_device_id": graphics_device_id,
        "headless": headless,
        "multi_gpu": multi_gpu,
        "virtual_screen_capture": virtual_screen_capture,
        "force_render": force_render,
        "cfg_task_name": cfg.task.name,
        "cfg_physx_block": "physx" in cfg.task.sim,
    }
    with open(os.environ["ISAACGYM_DOUBLE_LOG"], "w") as f:
        json.dump(called, f)
    task_cfg = {"name": cfg.task.name, **{k: v for k, v in cfg.task.items() if k != "name"}}
    return DoubleVecTask(task_cfg, num_envs, rl_device)
