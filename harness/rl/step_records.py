"""A rollout step's bookkeeping after the env step as one Warp kernel: rl_games' shaped reward and running returns.

Why: after each env step rl_games' rollout shapes the reward (shift, scale, clip), adds the discounted value of worlds
that timed out (value bootstrap), stores the reward, adds to each world's running return, shaped return and length,
and zeroes them where an episode ended; with the per-step records this rollout keeps for the episode meters that is
about 20 small torch operations a step (bench/kernel_count.py), each a kernel. Here one thread per world does all of
it, in rl_games 1.6.5's order of operations (DefaultRewardsShaper, A2CBase.play_steps): every product that meets a
sum is by a 0 or a 1, so a fused multiply-add cannot round differently, and tests/test_rollout.py checks the
rollout equal to rl_games' own, to the bit.
"""

from __future__ import annotations

import torch
import warp as wp

from harness import graphs
from harness.rl.seam import DefaultRewardsShaper


@wp.kernel
def record_step(  # noqa: PLR0917 (a Warp kernel takes its inputs by position)
    rewards: wp.array2d(dtype=wp.float32),
    values: wp.array2d(dtype=wp.float32),
    dones: wp.array(dtype=wp.bool),
    time_outs: wp.array(dtype=wp.bool),
    shaping: wp.vec4,  # shift, scale, min, max: DefaultRewardsShaper's
    gamma: wp.float32,
    bootstrap: int,
    current_rewards: wp.array2d(dtype=wp.float32),
    current_shaped_rewards: wp.array2d(dtype=wp.float32),
    current_lengths: wp.array(dtype=wp.float32),
    stored_rewards: wp.array2d(dtype=wp.float32),
    finished: wp.array(dtype=wp.bool),
    returns: wp.array2d(dtype=wp.float32),
    shaped_returns: wp.array2d(dtype=wp.float32),
    lengths: wp.array(dtype=wp.float32),
):
    i = wp.tid()
    reward = rewards[i, 0]
    shaped = wp.clamp((reward + shaping[0]) * shaping[1], shaping[2], shaping[3])
    if bootstrap != 0:
        timed_out = wp.where(time_outs[i], 1.0, 0.0)
        shaped = shaped + gamma * values[i, 0] * timed_out
    stored_rewards[i, 0] = shaped
    current_rewards[i, 0] = current_rewards[i, 0] + reward
    current_shaped_rewards[i, 0] = current_shaped_rewards[i, 0] + shaped
    current_lengths[i] = current_lengths[i] + 1.0
    finished[i] = dones[i]
    returns[i, 0] = current_rewards[i, 0]
    shaped_returns[i, 0] = current_shaped_rewards[i, 0]
    lengths[i] = current_lengths[i]
    not_done = 1.0 - wp.where(dones[i], 1.0, 0.0)
    current_rewards[i, 0] = current_rewards[i, 0] * not_done
    current_shaped_rewards[i, 0] = current_shaped_rewards[i, 0] * not_done
    current_lengths[i] = current_lengths[i] * not_done


def fusable(agent, rewards: torch.Tensor, dones: torch.Tensor) -> bool:
    """Whether the agent's bookkeeping is the plain kind this kernel does: rl_games' default reward shaper without its
    log (the attributes read: seam.SHAPER_USED), one value, float32 rewards and returns, a bool done mask."""
    shaper = agent.rewards_shaper
    return (
        type(shaper) is DefaultRewardsShaper
        and shaper.is_torch
        and not shaper.log_val
        and agent.value_size == 1
        and rewards.dtype == agent.current_rewards.dtype == torch.float32
        and rewards.dim() == 2
        and dones.dtype == torch.bool
    )


def launch(agent, records, n: int, *, rewards: torch.Tensor, values: torch.Tensor, infos: dict) -> None:
    """Step `n`'s bookkeeping: the shaped reward into the experience buffer, the running returns, the records."""
    shaper, dones = agent.rewards_shaper, agent.dones
    bootstrap = agent.value_bootstrap and "time_outs" in infos
    time_outs = infos["time_outs"] if bootstrap else dones
    shaping = wp.vec4(shaper.shift_value, shaper.scale_value, shaper.min_val, shaper.max_val)
    inputs = [rewards, values, dones, time_outs, shaping, wp.float32(agent.gamma), int(bootstrap)]
    running = [agent.current_rewards, agent.current_shaped_rewards, agent.current_lengths]
    stored = agent.experience_buffer.tensor_dict["rewards"][n]
    outputs = [stored, records.finished[n], records.returns[n], records.shaped_returns[n], records.lengths[n]]
    graphs.warp_launch(record_step, dones.shape[0], [*inputs, *running, *outputs])
