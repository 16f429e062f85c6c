"""The rl_games glue: the env registered as IsaacGymEnvs does, an agent that saves safely, the Runner."""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.common import env_configurations, vecenv
from rl_games.common.algo_observer import AlgoObserver
from rl_games.common.ivecenv import IVecEnv
from rl_games.torch_runner import Runner

from harness.checkpoints import (
    check_network,
    check_task,
    checkpoint_path,
    load_checkpoint,
    save_atomic,
    strip_compile_prefix,
)
from harness.errors import UserError
from harness.rollout import SyncFreeRollout
from harness.update import SyncFreeUpdate


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


class TrainingStopped(Exception):
    """Training ended early on a signal, after saving a checkpoint."""

    def __init__(self, signum: int, path: Path | None) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum, self.path = signum, path


class HarnessAgent(SyncFreeRollout, SyncFreeUpdate, A2CAgent):
    """rl_games' continuous PPO agent: atomic plain checkpoints, a faithful resume, a save on SIGINT/SIGTERM,
    and a rollout and an update without per-step host syncs."""

    stop_signal: int | None = None  # set by the signal handler; acted on at the next epoch boundary
    _restored_best: float | None = None

    def save(self, fn: str) -> Path:
        state = self.get_full_state_weights()
        state["model"] = strip_compile_prefix(state["model"])
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
        state = load_checkpoint(Path(fn))
        task_name = self.vec_env.env.cfg["name"]
        check_task(state, task_name, Path(fn))
        check_network(state["model"], self.model.state_dict(), Path(fn), task_name)
        self.set_full_state_weights(state, set_epoch=set_epoch)  # the learning rate too (SyncFreeUpdate)
        # rl_games' train() forgets the best reward (so a worse policy would replace <name>.pth): carry it over.
        self._restored_best = float(state.get("last_mean_rewards", -math.inf))
        print(
            f"Resumed from {fn} at epoch {self.epoch_num} (frame {self.frame}, best mean reward "
            f"{self._restored_best:.2f}, learning rate {self.last_lr:.2e})"
        )

    def update_epoch(self) -> int:
        if self._restored_best is not None:  # train() has just reset the best reward: put it back
            self.last_mean_rewards, self._restored_best = self._restored_best, None
        signum = self._agreed_stop_signal()
        if signum:
            raise TrainingStopped(signum, self._save_now() if self.global_rank == 0 else None)
        return super().update_epoch()

    def _agreed_stop_signal(self) -> int:
        """The signal to stop on, 0 for none; with several GPUs rank 0 decides, so all ranks stop after one epoch."""
        signum = self.stop_signal or 0
        if self.multi_gpu:  # one small broadcast per epoch
            flag = torch.tensor([signum], device=self.device)
            dist.broadcast(flag, 0)
            signum = int(flag.item())
        return signum

    def _save_now(self) -> Path:
        reward = self.game_rewards.get_mean()[0] if self.game_rewards.current_size > 0 else -math.inf
        if self.writer is not None:
            self.writer.flush()
        return self.save(os.path.join(self.nn_dir, f"last_{self.config['name']}_ep_{self.epoch_num}_rew_{reward}"))


def build_runner(params: dict, observer: AlgoObserver) -> Runner:
    """An rl_games Runner whose continuous PPO agent is HarnessAgent, loaded with `params`."""
    runner = Runner(algo_observer=observer)
    runner.algo_factory.register_builder("a2c_continuous", HarnessAgent)
    runner.load({"params": params})
    runner.reset()
    return runner
