"""The agent: rl_games' continuous PPO (its Runner, losses, schedules, checkpoints) with this project's fast path.

`seam` is the one module that imports rl_games and says what of it is relied on; `agent.HarnessAgent` mixes the
replacements (`train_loop`, `rollout`, `update`) in before rl_games' A2CAgent; `resume_state` is what a
checkpoint carries beyond rl_games' weights; `trainer` builds rl_games' Runner for a run (train.py, bench/ and
the tests alike) with a list of observers, `progress` being the one that prints the epoch line.
"""
