"""Anymal's observations and reward as one Warp kernel each, one thread per env.

Why: as torch operations they were about 100 of a step's 138 kernels (bench/kernel_count.py;
harness/tasks/locomotion_kernels.py says why that matters). The math is upstream's (isaacgymenvs/tasks/anymal.py),
as harness/tasks/anymal.py documents it, quirks included; quaternions are MuJoCo's (w, x, y, z).
"""

from __future__ import annotations

import warp as wp

from harness.tasks.rotations import rotate


@wp.func
def _base_linear_velocity(qpos: wp.array2d(dtype=float), qvel: wp.array2d(dtype=float), i: int) -> wp.vec3:
    # The free joint's world-frame linear velocity in the base's frame: rotated by the base's inverse.
    inverse_xyz = -wp.vec3(qpos[i, 4], qpos[i, 5], qpos[i, 6])
    return rotate(qpos[i, 3], inverse_xyz, wp.vec3(qvel[i, 0], qvel[i, 1], qvel[i, 2]))


@wp.kernel
def observe(  # noqa: PLR0917 (a Warp kernel takes its inputs by position)
    qpos: wp.array2d(dtype=float),
    qvel: wp.array2d(dtype=float),
    commands: wp.array2d(dtype=float),
    default_dof_pos: wp.array(dtype=float),
    actions: wp.array2d(dtype=float),
    linear_velocity_scale: float,
    angular_velocity_scale: float,
    dof_position_scale: float,
    dof_velocity_scale: float,
    clip: float,
    obs: wp.array2d(dtype=float),
):
    """Row i: the base's linear and angular velocity in its frame, upstream's "projected gravity" (the world's down
    vector rotated by the base's orientation: minus the base's z axis in the world), the command (its speeds times
    linearVelocityScale, its yaw rate times angularVelocityScale), the joints' offsets from the default pose and
    their velocities (scaled), the actions; all clipped to +-clipObservations."""
    i = wp.tid()
    linear = _base_linear_velocity(qpos, qvel, i)
    for k in range(3):
        obs[i, k] = wp.clamp(linear[k] * linear_velocity_scale, -clip, clip)
        obs[i, 3 + k] = wp.clamp(qvel[i, 3 + k] * angular_velocity_scale, -clip, clip)  # already in the base frame
    w = qpos[i, 3]
    x = qpos[i, 4]
    y = qpos[i, 5]
    z = qpos[i, 6]
    obs[i, 6] = wp.clamp(-2.0 * (x * z + w * y), -clip, clip)
    obs[i, 7] = wp.clamp(-2.0 * (y * z - w * x), -clip, clip)
    obs[i, 8] = wp.clamp(-(1.0 - 2.0 * (x * x + y * y)), -clip, clip)
    obs[i, 9] = wp.clamp(commands[i, 0] * linear_velocity_scale, -clip, clip)
    obs[i, 10] = wp.clamp(commands[i, 1] * linear_velocity_scale, -clip, clip)
    obs[i, 11] = wp.clamp(commands[i, 2] * angular_velocity_scale, -clip, clip)
    joints = actions.shape[1]
    for j in range(joints):
        obs[i, 12 + j] = wp.clamp((qpos[i, 7 + j] - default_dof_pos[j]) * dof_position_scale, -clip, clip)
        obs[i, 12 + joints + j] = wp.clamp(qvel[i, 6 + j] * dof_velocity_scale, -clip, clip)
        obs[i, 12 + 2 * joints + j] = wp.clamp(actions[i, j], -clip, clip)


@wp.kernel
def reward(  # noqa: PLR0917 (a Warp kernel takes its inputs by position)
    qpos: wp.array2d(dtype=float),
    qvel: wp.array2d(dtype=float),
    actuator_force: wp.array2d(dtype=float),
    commands: wp.array2d(dtype=float),
    linear_velocity_xy_scale: float,
    angular_velocity_z_scale: float,
    torque_scale: float,
    tracking_width: float,
    rewards: wp.array(dtype=float),
):
    """Env i's reward: how closely the base's planar speed and yaw rate follow the command (exp(-error / width),
    each scaled) plus the scaled (negative) sum of squared joint torques, at least 0."""
    i = wp.tid()
    linear = _base_linear_velocity(qpos, qvel, i)
    dx = commands[i, 0] - linear[0]
    dy = commands[i, 1] - linear[1]
    yaw_error = commands[i, 2] - qvel[i, 5]
    torques = wp.float32(0.0)
    for j in range(actuator_force.shape[1] - 6):
        torques += actuator_force[i, 6 + j] * actuator_force[i, 6 + j]
    total = wp.exp(-(dx * dx + dy * dy) / tracking_width) * linear_velocity_xy_scale
    total += wp.exp(-(yaw_error * yaw_error) / tracking_width) * angular_velocity_z_scale
    total += torques * torque_scale
    rewards[i] = wp.max(total, 0.0)
