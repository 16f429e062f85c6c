"""Test double standing in for Isaac Gym's `isaacgym` package (not Isaac Gym): importable, nothing more."""
