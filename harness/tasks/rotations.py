"""Quaternion rotations, batched on torch tensors and per thread in Warp kernels; quaternions are MuJoCo's (w, x, y,
z)."""

from __future__ import annotations

import torch
import warp as wp


@wp.func
def rotate(w: float, xyz: wp.vec3, v: wp.vec3) -> wp.vec3:
    """v rotated by the unit quaternion (w, xyz), in a Warp kernel: v + w t + xyz x t with t = 2 xyz x v. Its
    inverse is rotate(w, -xyz, v)."""
    t = 2.0 * wp.cross(xyz, v)
    return v + w * t + wp.cross(xyz, t)


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Express world-frame vectors `v` (N, 3) in the frames given by unit quaternions `q` (N, 4)."""
    w, xyz = q[:, :1], q[:, 1:]
    # v rotated by the conjugate: v - w t + xyz x t with t = 2 xyz x v.
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v - w * t + torch.cross(xyz, t, dim=-1)
