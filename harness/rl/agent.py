"""The agent: rl_games' continuous PPO with this project's loop, rollout, update and safe checkpoints; the env
registered as IsaacGymEnvs registers it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness import distributed
from harness.checkpoints import (
    checkpoint_path,
    load_checkpoint,
    open_checkpoint,
    save_atomic,
    strip_compile_prefix,
)
from harness.errors import UserError
from harness.rl import resume_state
from harness.rl.rollout import SyncFreeRollout
from harness.rl.seam import A2CAgent, IVecEnv, env_configurations, vecenv
from harness.rl.train_loop import TrainLoop
from harness.rl.update import SyncFreeUpdate
from harness.runs import RunFolder

# rl_games' best mean reward before the run has one
NO_BEST = -1000000000.0


class RlGamesVecEnv(IVecEnv):
    """Hands a VecTask to rl_games unchanged: torch tensors on the device, obs as {'obs': tensor}."""

    def __init__(self, config_name: str, num_actors: int, **kwargs) -> None:
        self.env = env_configurations.configurations[config_name]["env_creator"](**kwargs)

    def step(self, actions):
        return self.env.step(actions)

    def reset(self):
        return self.env.reset()

    def get_number_of_agents(self) -> int:
        return 1

    def get_env_state(self) -> dict:
        """Saved in every checkpoint as `env_state`: lets play refuse a checkpoint of another task."""
        return {"task": self.env.cfg["name"]}

    def get_env_info(self) -> dict:
        return {
            "action_space": self.env.action_space,
            "observation_space": self.env.observation_space,
            "agents": 1,
            "value_size": 1,
        }


def register_env(make_env: Callable[[], object]) -> None:
    """Register the env under IsaacGymEnvs' names: env_name `rlgpu`, vecenv type `RLGPU`."""
    vecenv.register("RLGPU", RlGamesVecEnv)
    env_configurations.register("rlgpu", {"vecenv_type": "RLGPU", "env_creator": lambda **kwargs: make_env()})


class HarnessAgent(TrainLoop, SyncFreeRollout, SyncFreeUpdate, A2CAgent):
    """rl_games' continuous PPO agent: its epoch loop owned here (one process or several), atomic plain
    checkpoints, a faithful resume, a save on SIGINT/SIGTERM, a rollout and an update without host syncs."""

    # rl_games takes the ranks from its own `multi_gpu` key, which this project keeps off (the process group is
    # harness.distributed's); its constructor sets them to 0/1 and makes a TensorBoard writer on "rank 0", so
    # they are read from the process group here and rl_games' assignments are ignored.
    global_rank = property(lambda self: distributed.rank(), lambda self, value: None)
    local_rank = property(lambda self: distributed.local_rank(), lambda self, value: None)
    world_size = property(lambda self: distributed.world_size(), lambda self, value: None)

    def __init__(self, base_name, params) -> None:
        super().__init__(base_name, params)
        self.multi_gpu = distributed.active()  # from here on rl_games averages gradients (trancate_gradients_and_step)

    def save(self, fn: str) -> Path:
        state = self.get_full_state_weights()
        state["model"] = strip_compile_prefix(state["model"])
        # Plain Python only, so that weights_only loading (harness.checkpoints) takes it: rl_games keeps a numpy scalar.
        state["last_mean_rewards"] = float(state["last_mean_rewards"])
        state["env_state"] = {**(state.get("env_state") or {}), **resume_state.capture(self)}
        path = checkpoint_path(fn)
        try:
            save_atomic(state, path)
        except OSError as error:
            raise UserError(
                f"cannot write checkpoint {path}: {error.strerror}; free space or fix permissions, then "
                "resume with checkpoint=auto (the checkpoints already there are intact)"
            ) from None
        return path

    def restore(self, fn: str, set_epoch: bool = True) -> None:
        """Load a checkpoint after checking it fits this task and network; keep its best reward and learning rate."""
        state = open_checkpoint(Path(fn), self.vec_env.env.cfg["name"], self.model.state_dict())
        self.set_full_state_weights(state, set_epoch=set_epoch)  # the learning rate and best reward too
        self.saved_episodes = state.get("env_state") or {}  # continued by train() (TrainLoop) once tensors exist
        self.last_mean_rewards = max(float(self.last_mean_rewards), self._recorded_best(Path(fn)))
        if self.global_rank == 0:
            best = self.last_mean_rewards
            best = f"best mean reward {best:.2f}" if best > NO_BEST else "no best checkpoint yet"
            print(
                f"Resumed from {fn} at epoch {self.epoch_num} (frame {self.frame}, {best}, "
                f"learning rate {self.last_lr:.2e})"
            )

    def _recorded_best(self, resumed_from: Path) -> float:
        """The best mean reward that this run's <experiment>.pth records (a resume from an older periodic
        checkpoint must not forget it, or a worse policy would replace that file)."""
        best = RunFolder(self.config["name"], Path(self.config["train_dir"])).best_checkpoint
        if not best.is_file() or best.resolve() == resumed_from.resolve():
            return NO_BEST
        return float(load_checkpoint(best).get("last_mean_rewards", NO_BEST))
