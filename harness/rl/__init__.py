"""The agent: rl_games' continuous PPO (its Runner, losses, schedules, checkpoints) with this project's fast path.

`seam` is the one module that imports rl_games and says what of it is relied on; `agent.HarnessAgent` mixes the
replacements (`train_loop`, `rollout`, `update`) in before rl_games' A2CAgent; `resume_state` is what a
checkpoint carries beyond rl_games' weights; `progress` is the observer that prints the epoch line.
"""
