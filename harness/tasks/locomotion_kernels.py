"""Ant's and Humanoid's observations and reward as one Warp kernel each, one thread per env.

Why: written as torch operations they were about 170 of a step's 208 kernels for Ant, each a few microseconds on
the GPU however few the envs, so a 4096-env epoch spent more time between them than in the physics
(bench/kernel_count.py, bench/results/2026-11-26-where-the-epoch-goes-H100.md). As Warp kernels they load from
Warp's kernel cache in milliseconds (torch.compile took 2-3 s at start) and run on the CPU too, which the tests use.
The math is IsaacGymEnvs' (isaacgymenvs/tasks/ant.py, humanoid.py), as harness/tasks/locomotion.py documents it;
quaternions are MuJoCo's (w, x, y, z).
"""

from __future__ import annotations

import math

import warp as wp

from harness.tasks.rotations import rotate

# Observation columns (IsaacGymEnvs' layout) that the reward reads; the joints' positions and velocities follow.
HEIGHT = wp.constant(0)
UP_PROJ = wp.constant(10)
HEADING_PROJ = wp.constant(11)
DOF_POS = wp.constant(12)
TWO_PI = wp.constant(2.0 * math.pi)


@wp.func
def _wrap_angle(angle: float) -> float:
    # Into [-pi, pi), as torch.remainder(angle + pi, 2 pi) - pi: wp.mod keeps the dividend's sign.
    shifted = wp.mod(angle + wp.pi, TWO_PI)
    if shifted < 0.0:
        shifted += TWO_PI
    return shifted - wp.pi


@wp.kernel
def observe(  # noqa: PLR0917 (a Warp kernel takes its inputs by position)
    qpos: wp.array2d(dtype=float),
    qvel: wp.array2d(dtype=float),
    actuator_force: wp.array2d(dtype=float),
    sensordata: wp.array2d(dtype=float),
    actions: wp.array2d(dtype=float),
    dof_lower: wp.array(dtype=float),
    dof_upper: wp.array(dtype=float),
    target: wp.vec2,
    dt: float,
    angular_velocity_scale: float,
    dof_velocity_scale: float,
    force_scale: float,
    observe_torques: bool,
    potentials: wp.array(dtype=float),
    prev_potentials: wp.array(dtype=float),
    obs: wp.array2d(dtype=float),
):
    """Row i of the observation: torso (12), joint positions scaled to [-1, 1] and velocities, the motors' torques
    if `observe_torques` (Humanoid), the force sensors, the actions; and env i's potentials moved on by one."""
    i = wp.tid()
    w = qpos[i, 3]
    x = qpos[i, 4]
    y = qpos[i, 5]
    z = qpos[i, 6]
    to_x = target[0] - qpos[i, 0]
    to_y = target[1] - qpos[i, 1]
    distance = wp.sqrt(to_x * to_x + to_y * to_y)
    prev_potentials[i] = potentials[i]
    potentials[i] = -distance / dt
    # The linear velocity in the torso frame: the world's rotated by the torso's inverse.
    local_v = rotate(w, -wp.vec3(x, y, z), wp.vec3(qvel[i, 0], qvel[i, 1], qvel[i, 2]))
    yaw = wp.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    heading_x = 1.0 - 2.0 * (y * y + z * z)  # the body x axis in the world, its x and y
    heading_y = 2.0 * (x * y + w * z)
    obs[i, 0] = qpos[i, 2]
    for k in range(3):
        obs[i, 1 + k] = local_v[k]
        obs[i, 4 + k] = qvel[i, 3 + k] * angular_velocity_scale  # a free joint's angular velocity: torso frame
    obs[i, 7] = yaw
    obs[i, 8] = wp.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))  # roll
    obs[i, 9] = _wrap_angle(wp.atan2(to_y, to_x) - yaw)  # angle to the target
    obs[i, UP_PROJ] = 1.0 - 2.0 * (x * x + y * y)  # world z of the body z axis
    obs[i, HEADING_PROJ] = (heading_x * to_x + heading_y * to_y) / distance
    dofs = actions.shape[1]
    for j in range(dofs):
        lower = dof_lower[j]
        upper = dof_upper[j]
        obs[i, DOF_POS + j] = (2.0 * qpos[i, 7 + j] - upper - lower) / (upper - lower)
        obs[i, DOF_POS + dofs + j] = qvel[i, 6 + j] * dof_velocity_scale
    column = wp.int32(DOF_POS + 2 * dofs)
    if observe_torques:
        for j in range(dofs):
            obs[i, column + j] = actuator_force[i, 6 + j] * force_scale
        column += dofs
    for k in range(sensordata.shape[1]):
        obs[i, column + k] = sensordata[i, k] * force_scale
    column += sensordata.shape[1]
    for j in range(dofs):
        obs[i, column + j] = actions[i, j]


@wp.kernel
def reward(  # noqa: PLR0917 (a Warp kernel takes its inputs by position)
    obs: wp.array2d(dtype=float),
    actions: wp.array2d(dtype=float),
    potentials: wp.array(dtype=float),
    prev_potentials: wp.array(dtype=float),
    cost_weights: wp.array(dtype=float),
    graded_limits: bool,
    alive_reward: float,
    heading_weight: float,
    up_weight: float,
    actions_cost: float,
    energy_cost: float,
    joints_at_limit_cost: float,
    death_cost: float,
    termination_height: float,
    rewards: wp.array(dtype=float),
    fell: wp.array(dtype=bool),
):
    """Env i's reward from its observation row: progress + alive + upright + heading, minus the actions', energy and
    joints-at-limit costs weighted per joint; deathCost where the torso fell below terminationHeight. Joints at their
    limit: Ant counts those past 99% of the half-range, Humanoid (`graded_limits`) grades 98% to 100% as 0 to 1."""
    i = wp.tid()
    heading_proj = obs[i, HEADING_PROJ]
    heading = wp.float32(heading_weight)
    if heading_proj <= 0.8:
        heading = heading_weight * heading_proj / 0.8
    up = wp.float32(0.0)
    if obs[i, UP_PROJ] > 0.93:
        up = up_weight
    dofs = actions.shape[1]
    actions_sq = wp.float32(0.0)
    energy = wp.float32(0.0)
    at_limit = wp.float32(0.0)
    for j in range(dofs):
        a = actions[i, j]
        position = wp.abs(obs[i, DOF_POS + j])
        actions_sq += a * a
        energy += wp.abs(a * obs[i, DOF_POS + dofs + j]) * cost_weights[j]
        if graded_limits:
            at_limit += wp.max(position - 0.98, 0.0) / 0.02 * cost_weights[j]
        elif position > 0.99:
            at_limit += cost_weights[j]
    total = potentials[i] - prev_potentials[i] + alive_reward + up + heading
    total -= actions_cost * actions_sq + energy_cost * energy + joints_at_limit_cost * at_limit
    fallen = obs[i, HEIGHT] < termination_height
    if fallen:
        total = death_cost
    fell[i] = fallen
    rewards[i] = total
