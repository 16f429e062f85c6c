"""Task registry: task name -> class, imported only when the task is built; and the choice of physics engine."""

from __future__ import annotations

import importlib

from harness.errors import UserError

# name -> "module:Class"; add a task by adding a line here (and cfg/task/<Name>.yaml, cfg/train/<Name>PPO.yaml).
TASKS = {
    "Ant": "harness.tasks.ant:Ant",
    "Cartpole": "harness.tasks.cartpole:Cartpole",
    "Humanoid": "harness.tasks.humanoid:Humanoid",
}


def make_env(cfg):
    """The vectorized env of a resolved config: MuJoCo Warp's task, or Isaac Gym's through IsaacGymEnvs."""
    if cfg.physics_engine == "physx":
        from harness.sim.physx import make_physx_env

        return make_physx_env(cfg)
    from omegaconf import OmegaConf

    task = make_task(OmegaConf.to_container(cfg.task, resolve=True), cfg.sim_device, cfg.rl_device)
    task.set_step_mode(graph=True, compiled=bool(cfg.compile_task))
    return task


def make_task(task_cfg: dict, sim_device: str, rl_device: str):
    """Build the task named by `task_cfg['name']` with MuJoCo Warp physics."""
    name = task_cfg["name"]
    if name not in TASKS:
        raise UserError(f"task={name} has no MuJoCo Warp implementation; available: {', '.join(sorted(TASKS))}")
    module_name, class_name = TASKS[name].split(":")
    task_class = getattr(importlib.import_module(module_name), class_name)
    from harness.sim.mjwarp import USED_SIM_KEYS

    ignored = [f"env.{key}" for key in task_cfg["env"] if key not in task_class.used_env_keys]
    ignored += [f"sim.{key}" for key in task_cfg["sim"] if key not in USED_SIM_KEYS]
    if task_cfg.get("task", {}).get("randomize"):
        ignored.append("task.randomize")
    if ignored:
        print(f"MuJoCo Warp has no use for these {name} settings, which are ignored: {', '.join(ignored)}")
    return task_class(task_cfg, sim_device, rl_device)
