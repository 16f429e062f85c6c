"""Isaac Gym (PhysX) through IsaacGymEnvs' own tasks, for users who have Isaac Gym installed.

Runs on Python 3.8 (Isaac Gym's only Pythons are 3.6-3.8) and must not import warp or mujoco.
"""

from __future__ import annotations

from harness.errors import UserError

NOT_INSTALLED = (
    "physics_engine=physx needs Isaac Gym, which is not installed: download Isaac Gym Preview 4 from NVIDIA "
    "(https://developer.nvidia.com/isaac-gym), run `pip install -e python/` in it, then `pip install -e .` in a "
    "clone of IsaacGymEnvs, in a Python 3.8 environment (README: Isaac Gym); or use physics_engine=mjwarp"
)


def import_isaacgym() -> None:
    """Import Isaac Gym and IsaacGymEnvs; Isaac Gym refuses to load once torch has been imported, so call this first."""
    try:
        import isaacgym  # noqa: F401
        import isaacgymenvs  # noqa: F401
    except ImportError as error:
        if "torch" in str(error).lower() and "before" in str(error).lower():
            raise UserError(
                "Isaac Gym must load before torch: put physics_engine=physx on the command line "
                "(this run's config asks for it)"
            ) from None
        raise UserError(NOT_INSTALLED) from None


def make_physx_env(cfg):
    """IsaacGymEnvs' VecTask for `cfg.task_name`, built by `isaacgymenvs.make` from this run's resolved config."""
    import_isaacgym()  # already done by the entry point unless only the run's config asked for physx
    import isaacgymenvs

    env = isaacgymenvs.make(
        seed=cfg.seed,
        task=cfg.task_name,
        num_envs=cfg.task.env.numEnvs,
        sim_device=cfg.sim_device,
        rl_device=cfg.rl_device,
        graphics_device_id=cfg.graphics_device_id,
        headless=cfg.headless,
        multi_gpu=cfg.multi_gpu,
        virtual_screen_capture=cfg.capture_video,
        force_render=cfg.force_render,
        cfg=cfg,
    )
    if env.num_envs != cfg.task.env.numEnvs or len(env.observation_space.shape) != 1:
        raise UserError(
            f"isaacgymenvs.make returned {env.num_envs} envs with observations {env.observation_space.shape}; "
            f"the harness needs {cfg.task.env.numEnvs} envs with flat observations"
        )
    return env
