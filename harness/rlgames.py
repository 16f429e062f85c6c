"""The rl_games glue: the env registered as IsaacGymEnvs does, an agent that saves safely, the Runner."""

from __future__ import annotations

from collections.abc import Callable

from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.common import env_configurations, vecenv
from rl_games.common.algo_observer import AlgoObserver
from rl_games.common.ivecenv import IVecEnv
from rl_games.torch_runner import Runner

from harness.checkpoints import checkpoint_path, save_atomic, strip_compile_prefix


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


class SafeSavingAgent(A2CAgent):
    """rl_games' continuous PPO agent, saving plain rl_games checkpoints atomically."""

    def save(self, fn: str) -> None:
        state = self.get_full_state_weights()
        state["model"] = strip_compile_prefix(state["model"])
        save_atomic(state, checkpoint_path(fn))


def build_runner(params: dict, observer: AlgoObserver) -> Runner:
    """An rl_games Runner whose continuous PPO agent is SafeSavingAgent, loaded with `params`."""
    runner = Runner(algo_observer=observer)
    runner.algo_factory.register_builder("a2c_continuous", SafeSavingAgent)
    runner.load({"params": params})
    runner.reset()
    return runner
