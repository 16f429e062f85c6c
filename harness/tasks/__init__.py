"""Task registry: task name -> class, imported only when the task is built; and the choice of physics engine."""

from __future__ import annotations

import importlib

from harness.errors import UserError

# name -> "module:Class"; add a task by adding a line here (and cfg/task/<Name>.yaml, cfg/train/<Name>PPO.yaml).
TASKS = {
    "Ant": "harness.tasks.ant:Ant",
    "Anymal": "harness.tasks.anymal:Anymal",
    "Cartpole": "harness.tasks.cartpole:Cartpole",
    "FrankaCabinet": "harness.tasks.franka_cabinet:FrankaCabinet",
    "Humanoid": "harness.tasks.humanoid:Humanoid",
}


def make_env(cfg):
    """The vectorized env of a resolved config, built by its engine (harness.engines)."""
    from harness.engines import get_engine

    return get_engine(cfg.physics_engine).make_env(cfg)


def make_mjwarp_env(cfg):
    """The MuJoCo Warp task of a resolved config, its step captured as a CUDA graph (fused by torch.compile with
    compile_task=True)."""
    from omegaconf import OmegaConf

    task = make_task(OmegaConf.to_container(cfg.task, resolve=True), cfg.sim_device, cfg.rl_device)
    task.set_step_mode(graph=True, compiled=bool(cfg.compile_task))
    return task


def registered_class(name: str) -> type:
    """The task class TASKS names, its module imported now."""
    if name not in TASKS:
        raise UserError(f"task={name} has no MuJoCo Warp implementation; available: {', '.join(sorted(TASKS))}")
    module_name, class_name = TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_task(task_cfg: dict, sim_device: str, rl_device: str):
    """Build the task named by `task_cfg['name']` with MuJoCo Warp physics."""
    name = task_cfg["name"]
    task_class = registered_class(name)
    from harness.sim.mjwarp import USED_SIM_KEYS

    ignored = [f"env.{key}" for key in task_cfg["env"] if key not in task_class.used_env_keys]
    ignored += [f"sim.{key}" for key in task_cfg["sim"] if key not in USED_SIM_KEYS]
    if task_cfg.get("task", {}).get("randomize"):
        ignored.append("task.randomize")
    if ignored:
        print(f"MuJoCo Warp has no use for these {name} settings, which are ignored: {', '.join(ignored)}")
    num_envs = int(task_cfg["env"]["numEnvs"])
    if sim_device.startswith("cuda") and task_class.gpu_bytes_per_env:
        import torch

        free, _ = torch.cuda.mem_get_info(sim_device)
        check_memory(name, num_envs, task_class.gpu_bytes_per_env, free, sim_device)
    return task_class(task_cfg, sim_device, rl_device)


def check_memory(task: str, num_envs: int, bytes_per_env: int, free_bytes: int, device: str) -> None:
    """Refuse, before allocating, a num_envs whose worlds would not fit in the device's free memory."""
    needed = num_envs * bytes_per_env
    if needed > free_bytes:
        raise UserError(
            f"num_envs={num_envs} needs about {needed / 2**30:.1f} GiB on {device} for {task} (about "
            f"{bytes_per_env // 1024} KiB per env), and {free_bytes / 2**30:.1f} GiB are free: use "
            f"num_envs={free_bytes // bytes_per_env} or fewer"
        )
