"""How far each CUDA graph lands from the same work run eagerly: the env step, rl_games' action sampling, the whole
rollout and the PPO minibatch step. bench/throughput.py reports these figures; tests/test_graphs.py (GPU) asserts them.
Each function restores the state it starts from before the second run, so both runs see the same inputs.
"""

from __future__ import annotations

import torch

from harness import graphs
from harness.rl.seam import A2CBase


def compare_graph_with_eager(task) -> float:
    """Largest difference between an eager step and the captured step from the same state, over worlds
    that did not reset (resets draw other random numbers); MuJoCo Warp on the GPU is not bit-deterministic,
    and contact forces (in the observations) amplify its rounding differences."""
    import warp as wp

    # The solver's warm start is state too: without it the contact forces of the two steps differ. So are the
    # task's episode buffers (FrankaCabinet's joint targets, which each step moves, Anymal's commands, ...).
    live = [task.sim.qpos, task.sim.qvel, wp.to_torch(task.sim.data.qacc_warmstart)]
    live += [getattr(task, name) for name in task.episode_buffers]
    state = [t.clone() for t in live]
    actions = torch.rand(task.num_envs, task.num_actions, device=task.device) * 2 - 1
    task.step(actions)
    eager_obs, eager_done = task.obs_buf.clone(), task.reset_buf.clone()
    task.set_step_mode(graph=True)
    for _ in range(2):  # the first call runs eagerly and captures; the second replays the graph
        for tensor, saved in zip(live, state, strict=True):
            tensor.copy_(saved)
        task.step(actions)
    kept = ~(eager_done | task.reset_buf)
    return (task.obs_buf[kept] - eager_obs[kept]).abs().max().item()


def compare_update_graph_with_eager(agent) -> float:
    """Largest weight difference between a PPO minibatch step run eagerly and the same step replayed from
    the update's CUDA graph, both from the same weights, optimizer, scaler, normalizer and learning rate."""
    agent.set_eval()
    with torch.no_grad():
        batch = agent.play_steps()
    agent.set_train()
    batch.pop("played_frames")
    agent.prepare_dataset(batch)
    minibatch = agent.dataset[0]
    graphs.keep_buffers_in_place(agent.model)
    params, buffers = list(agent.model.parameters()), list(agent.model.buffers())
    optimizer_state = [t for state in agent.optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    scaler = agent.scaler  # its state exists where mixed precision is on
    scaler_state = [getattr(scaler, name) for name in ("_scale", "_growth_tracker") if hasattr(scaler, name)]
    state = params + buffers + optimizer_state + scaler_state + [agent._lr]
    saved = [t.clone() for t in state]
    agent._minibatch_step(minibatch)  # eagerly
    graphs.keep_buffers_in_place(agent.model)
    eager = [p.detach().clone() for p in params]
    for tensor, value in zip(state, saved, strict=True):
        tensor.data.copy_(value)
    agent._train_minibatch(minibatch)  # replayed
    return max((p.detach() - e).abs().max().item() for p, e in zip(params, eager, strict=True))


ROLLOUT_KEYS = ("obses", "actions", "mus", "values", "rewards")


def compare_rollout_graph_with_eager(agent) -> dict[str, float]:
    """Largest difference, per stored tensor, in what a rollout stores for the update between the rollout's CUDA
    graph and the same rollout step by step, both from the same worlds, episodes and random number generators
    (harness.rl.resume_state), so both draw the same samples."""
    replayed, eager = _rollouts_from_one_state(agent, replayed=(True, False))
    return {key: (replayed[key] - eager[key]).abs().max().item() for key in ROLLOUT_KEYS}


def compare_rollout_eager_with_itself(agent) -> dict[str, float]:
    """The same figures for two step-by-step rollouts from one state: the floor the graph's figures are read
    against, since MuJoCo Warp on the GPU is not bit-deterministic and contacts and terminations amplify it."""
    first, second = _rollouts_from_one_state(agent, replayed=(False, False))
    return {key: (first[key] - second[key]).abs().max().item() for key in ROLLOUT_KEYS}


def _rollouts_from_one_state(agent, replayed: tuple[bool, ...]) -> list[dict[str, torch.Tensor]]:
    """One rollout per entry of `replayed` (True: from the rollout's graph), each from the state the first starts
    from; what each stored."""
    from harness.rl import resume_state

    agent.set_eval()
    saved, graph, config = resume_state.capture(agent), agent._rollout_graph, agent.config
    runs = []
    for from_graph in replayed:
        resume_state.restore(agent, saved)
        if not from_graph:  # step by step; the graph and the config are kept for after
            agent._rollout_graph, agent.config = None, {**config, "capture_rollout": False}
        try:
            with torch.no_grad():
                agent.play_steps()
        finally:
            agent._rollout_graph, agent.config = graph, config
        runs.append({key: agent.experience_buffer.tensor_dict[key].clone() for key in ROLLOUT_KEYS})
    return runs


def compare_policy_graph_with_eager(agent) -> float:
    """Largest difference in the action means and values between rl_games' action sampling replayed from the
    rollout's CUDA graph and run eagerly (the sampled actions themselves draw other random numbers)."""
    agent.set_eval()
    with torch.no_grad():
        replayed = {
            key: value.clone() for key, value in agent.get_action_values(agent.obs).items() if key in ("mus", "values")
        }
        eager = A2CBase.get_action_values(agent, agent.obs)
    return max((replayed[key] - eager[key]).abs().max().item() for key in replayed)
