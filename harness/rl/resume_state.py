"""What a checkpoint holds beyond rl_games' weights so that a resume continues the same episodes.

In rl_games' `env_state` slot: the task's worlds (simulator state and episode buffers), the agent's running
episodes (current observations, returns, lengths, and the episode meters it reports from) and the random number
generators (Python, NumPy, torch on the CPU and on the GPU). All plain tensors and numbers: checkpoints load as
data (harness.checkpoints), and rl_games' own player, which ignores this slot, still loads the file.
"""

from __future__ import annotations

import random

import numpy as np
import torch

_AGENT_BUFFERS = ("dones", "current_rewards", "current_shaped_rewards", "current_lengths")
_METERS = ("game_rewards", "game_shaped_rewards", "game_lengths")


def capture(agent) -> dict:
    """The episodes in progress and the generators, to continue from; {} for an env that cannot give its state."""
    env = agent.vec_env.env
    if not hasattr(env, "get_state"):  # Isaac Gym's tasks
        return {}
    # copies, also where the agent runs on the CPU (.cpu() would hand back the live buffer itself there)
    running = {name: getattr(agent, name).detach().to("cpu", copy=True) for name in _AGENT_BUFFERS}
    running["obs"] = agent.obs["obs"].detach().to("cpu", copy=True)
    # (rl_games counts a meter's size as a numpy integer: kept as a plain int, so the file loads as data)
    meters = {
        name: (getattr(agent, name).mean.to("cpu", copy=True), int(getattr(agent, name).current_size))
        for name in _METERS
    }
    return {"env": env.get_state(), "agent": running, "meters": meters, "rng": _rng_state(agent.ppo_device)}


def restore(agent, state: dict) -> bool:
    """Continue the saved episodes (after rl_games' init_tensors, instead of resetting the envs); False if the
    checkpoint holds none, or none that fits this run (another num_envs), and then nothing was changed."""
    env = agent.vec_env.env
    if not state.get("env") or not hasattr(env, "set_state") or not env.set_state(state["env"]):
        return False
    for name in _AGENT_BUFFERS:
        getattr(agent, name).copy_(state["agent"][name])
    # on the agent's device, as env_reset() gives them (obs_to_tensors leaves a tensor where it is)
    agent.obs = agent.obs_to_tensors({"obs": state["agent"]["obs"].to(agent.ppo_device)})
    for name, (mean, size) in state["meters"].items():
        meter = getattr(agent, name)
        meter.mean, meter.current_size = mean.to(meter.mean.device), size
    _set_rng_state(state["rng"], agent.ppo_device)
    return True


def _rng_state(device: torch.device | str) -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device | str) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
