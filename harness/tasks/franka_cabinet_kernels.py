"""FrankaCabinet's grasp frames, observations and reward as Warp kernels, one thread per env.

Why: as torch operations they were about 210 of a step's 254 kernels, and the env step ran at 0.46 of physics alone
(bench/kernel_count.py; harness/tasks/locomotion_kernels.py says why that matters). The math is upstream's
(isaacgymenvs/tasks/franka_cabinet.py), as harness/tasks/franka_cabinet.py documents it, quirks included.
Quaternions are MuJoCo's (w, x, y, z), also in MuJoCo Warp's body poses.
"""

from __future__ import annotations

import warp as wp

from harness.tasks.rotations import rotate

FRANKA_JOINTS = wp.constant(9)


@wp.kernel
def grasp_frames(  # noqa: PLR0917 (a Warp kernel takes its inputs by position)
    xpos: wp.array2d(dtype=wp.vec3),
    xquat: wp.array2d(dtype=wp.quat),
    bodies: wp.vec4i,
    franka_grasp_offset: wp.vec3,
    franka_grasp_turn: wp.vec4,
    drawer_grasp_offset: wp.vec3,
    franka_grasp: wp.array(dtype=wp.vec3),
    drawer_grasp: wp.array(dtype=wp.vec3),
    franka_turn: wp.array(dtype=wp.vec4),
    gripper_forward: wp.array(dtype=wp.vec3),
    gripper_up: wp.array(dtype=wp.vec3),
    left_finger: wp.array(dtype=wp.vec3),
    right_finger: wp.array(dtype=wp.vec3),
):
    """Env i's grasp points, the Franka grasp frame's rotation (link7's turned by `franka_grasp_turn`, (w, x, y, z))
    and its forward (z) and up (y) axes, and the fingers' origins; `bodies`: link7, drawer, left, right finger."""
    i = wp.tid()
    link7 = xquat[i, bodies[0]]
    w = link7[0]
    xyz = wp.vec3(link7[1], link7[2], link7[3])
    franka_grasp[i] = xpos[i, bodies[0]] + rotate(w, xyz, franka_grasp_offset)
    # The cabinet is fixed and unturned and the drawer slides along x: its frame's axes are the world's.
    drawer_grasp[i] = xpos[i, bodies[1]] + drawer_grasp_offset
    tw = franka_grasp_turn[0]
    txyz = wp.vec3(franka_grasp_turn[1], franka_grasp_turn[2], franka_grasp_turn[3])
    turn_w = w * tw - wp.dot(xyz, txyz)  # the Hamilton product link7 x turn
    turn_xyz = w * txyz + tw * xyz + wp.cross(xyz, txyz)
    franka_turn[i] = wp.vec4(turn_w, turn_xyz[0], turn_xyz[1], turn_xyz[2])
    gripper_forward[i] = rotate(turn_w, turn_xyz, wp.vec3(0.0, 0.0, 1.0))
    gripper_up[i] = rotate(turn_w, turn_xyz, wp.vec3(0.0, 1.0, 0.0))
    left_finger[i] = xpos[i, bodies[2]]
    right_finger[i] = xpos[i, bodies[3]]


@wp.kernel
def observe(  # noqa: PLR0917 (a Warp kernel takes its inputs by position)
    qpos: wp.array2d(dtype=float),
    qvel: wp.array2d(dtype=float),
    franka_grasp: wp.array(dtype=wp.vec3),
    drawer_grasp: wp.array(dtype=wp.vec3),
    dof_lower: wp.array(dtype=float),
    dof_upper: wp.array(dtype=float),
    dof_velocity_scale: float,
    drawer_joint: wp.vec2i,
    clip: float,
    obs: wp.array2d(dtype=float),
):
    """Row i: the Franka's joints scaled to [-1, 1] over their ranges and their velocities (times
    dofVelocityScale), the drawer's grasp point less the Franka's, the drawer's opening and speed (`drawer_joint`:
    its qpos and qvel index); all clipped to +-clipObservations."""
    i = wp.tid()
    for j in range(FRANKA_JOINTS):
        lower = dof_lower[j]
        scaled = 2.0 * (qpos[i, j] - lower) / (dof_upper[j] - lower) - 1.0
        obs[i, j] = wp.clamp(scaled, -clip, clip)
        obs[i, FRANKA_JOINTS + j] = wp.clamp(qvel[i, j] * dof_velocity_scale, -clip, clip)
    to_handle = drawer_grasp[i] - franka_grasp[i]
    for k in range(3):
        obs[i, 2 * FRANKA_JOINTS + k] = wp.clamp(to_handle[k], -clip, clip)
    obs[i, 21] = wp.clamp(qpos[i, drawer_joint[0]], -clip, clip)
    obs[i, 22] = wp.clamp(qvel[i, drawer_joint[1]], -clip, clip)


@wp.func
def _indicator(condition: bool) -> float:
    if condition:
        return 1.0
    return 0.0


@wp.kernel
def reward(  # noqa: PLR0917 (a Warp kernel takes its inputs by position)
    franka_grasp: wp.array(dtype=wp.vec3),
    drawer_grasp: wp.array(dtype=wp.vec3),
    gripper_forward: wp.array(dtype=wp.vec3),
    gripper_up: wp.array(dtype=wp.vec3),
    drawer_inward: wp.array(dtype=wp.vec3),
    drawer_up: wp.array(dtype=wp.vec3),
    left_finger: wp.array(dtype=wp.vec3),
    right_finger: wp.array(dtype=wp.vec3),
    drawer_opening: wp.array(dtype=float),
    actions: wp.array2d(dtype=float),
    scales: wp.array(dtype=float),
    finger_dist_offset: float,
    opened_at: float,
    rewards: wp.array(dtype=float),
    opened: wp.array(dtype=bool),
):
    """Upstream's compute_franka_reward for env i; `scales`: dist, rot, aroundHandle, open, fingerDist,
    actionPenalty."""
    i = wp.tid()
    handle = drawer_grasp[i]
    opening = drawer_opening[i]
    left = left_finger[i]
    right = right_finger[i]
    d = wp.length(franka_grasp[i] - handle)
    dist_reward = 1.0 / (1.0 + d * d)
    dist_reward = dist_reward * dist_reward
    if d <= 0.02:
        dist_reward = dist_reward * 2.0
    forward = wp.dot(gripper_forward[i], drawer_inward[i])
    up = wp.dot(gripper_up[i], drawer_up[i])
    rot_reward = 0.5 * (wp.sign(forward) * forward * forward + wp.sign(up) * up * up)
    around = left[2] > handle[2] and right[2] < handle[2]
    around_handle_reward = 0.5 * _indicator(around)
    finger_dist_reward = wp.float32(0.0)
    if around:
        finger_dist_reward = (finger_dist_offset - wp.abs(left[2] - handle[2])) + (
            finger_dist_offset - wp.abs(right[2] - handle[2])
        )
    action_penalty = wp.float32(0.0)
    for j in range(actions.shape[1]):
        action_penalty += actions[i, j] * actions[i, j]
    total = (
        scales[0] * dist_reward
        + scales[1] * rot_reward
        + scales[2] * around_handle_reward
        + scales[3] * opening * (around_handle_reward + 1.0)
        + scales[4] * finger_dist_reward
        - scales[5] * action_penalty
    )
    total += 0.5 * _indicator(opening > 0.01)
    total += around_handle_reward * _indicator(opening > 0.2)
    total += 2.0 * around_handle_reward * _indicator(opening > opened_at)
    # A finger past the handle (into the drawer, which lies towards -x) overrides everything.
    handle_x = handle[0] - finger_dist_offset
    if left[0] < handle_x or right[0] < handle_x:
        total = -1.0
    rewards[i] = total
    opened[i] = opening > opened_at
