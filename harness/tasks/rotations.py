"""Batched quaternion helpers on torch tensors; quaternions are MuJoCo's (w, x, y, z)."""

from __future__ import annotations

import math

import torch


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors `v` (N, 3) given in the frames of unit quaternions `q` (N, 4) into the world."""
    return _rotate(q, v, 1.0)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The rotation `b` followed by `a` (Hamilton product a b), both (N, 4)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Express world-frame vectors `v` (N, 3) in the frames given by unit quaternions `q` (N, 4)."""
    return _rotate(q, v, -1.0)


def _rotate(q: torch.Tensor, v: torch.Tensor, direction: float) -> torch.Tensor:
    """v rotated by q (direction 1) or by its inverse (-1: the conjugate, whose vector part flips the w t term's
    sign and leaves the last term as it is)."""
    w, xyz = q[:, :1], q[:, 1:]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return torch.add(v, w * t, alpha=direction) + torch.cross(xyz, t, dim=-1)


def basis_x_and_up(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The body x axis (N, 3) in the world and the world-z component of the body z axis (N,)."""
    w, x, y, z = q.unbind(-1)
    x_axis = torch.stack((1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)), dim=-1)
    up_z = 1 - 2 * (x * x + y * y)
    return x_axis, up_z


def roll_and_yaw(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll and yaw (x-y-z Euler angles) of unit quaternions, each in (-pi, pi]."""
    w, x, y, z = q.unbind(-1)
    roll = torch.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    yaw = torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll, yaw


def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """Wrap angles into [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
