"""Quaternion rotations in Warp kernels; quaternions are MuJoCo's (w, x, y, z)."""

from __future__ import annotations

import warp as wp


@wp.func
def rotate(w: float, xyz: wp.vec3, v: wp.vec3) -> wp.vec3:
    """v rotated by the unit quaternion (w, xyz), in a Warp kernel: v + w t + xyz x t with t = 2 xyz x v. Its
    inverse is rotate(w, -xyz, v)."""
    t = 2.0 * wp.cross(xyz, v)
    return v + w * t + wp.cross(xyz, t)
