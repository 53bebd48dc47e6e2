"""Where particles are drawn, and how big: positions in 3D, wrapping into a
periodic box, sphere sizes (from the bond length and the masses), the box
outline and the camera that frames a system (its bounding sphere).

numpy only; used by the live views and the video export alike.
"""
from __future__ import annotations

import numpy as np

from ..defaults import VIEW

#: sphere size factors are kept within these bounds (a particle 1000 times
#: heavier than the rest must not fill the view)
MASS_SCALE_RANGE = (0.4, 2.5)
#: the turntable camera's field of view (degrees)
FOV = 35.0
#: camera keys a saved camera state carries
CAMERA_KEYS = ("center", "scale_factor", "elevation", "azimuth", "fov")


def pad3(q: np.ndarray) -> np.ndarray:
    """(N, 2) or (N, 3) positions as (N, 3) float32 (z = 0 in 2D)."""
    q = np.asarray(q, dtype=np.float32)
    if q.shape[1] == 3:
        return q
    out = np.zeros((q.shape[0], 3), dtype=np.float32)
    out[:, :q.shape[1]] = q
    return out


def scene_positions(system, q: np.ndarray) -> np.ndarray:
    """Positions as drawn: folded into the periodic box (if any), in 3D."""
    if system is not None and system.box is not None:
        from core.physics.neighbours import wrap

        q = wrap(q, system.box)
    return pad3(q)


def bond_length(system) -> float:
    """Typical particle spacing of a system (for sphere size)."""
    meta = system.meta or {}
    if "spacing" in meta:
        return float(meta["spacing"])
    if system.edges is not None and len(system.edges):
        d = system.positions[system.edges[:, 0]] - system.positions[system.edges[:, 1]]
        return float(np.median(np.linalg.norm(d, axis=1)))
    try:
        return float(system.potential.r_min)
    except Exception:
        return 1.0


def sphere_size(system) -> float:
    """The common sphere diameter of a system (scene units):
    ``VIEW.particle_size`` bond lengths."""
    return VIEW.particle_size * bond_length(system)


def mass_scales(masses) -> np.ndarray:
    """Size factor of each particle's sphere from its mass: the radius grows
    as (m / m_ref)^(1/3) (a sphere of one density), m_ref being the median
    mass, so uniform masses keep factor 1 and, in a drawing of mass-1
    particles, one of mass 3 is drawn 3^(1/3) = 1.44 times wider.
    Clipped to :data:`MASS_SCALE_RANGE`."""
    m = np.asarray(masses, float).ravel()
    if m.size == 0:
        return np.ones(0, np.float32)
    ref = float(np.median(m))
    if not (np.all(np.isfinite(m)) and ref > 0 and np.all(m > 0)):
        return np.ones(m.size, np.float32)
    return np.clip(np.cbrt(m / ref), *MASS_SCALE_RANGE).astype(np.float32)


def draws_bonds(system) -> bool:
    """Whether a system has bonds to draw: a fixed graph, no periodic box."""
    e = system.edges
    return e is not None and len(e) > 0 and system.box is None


def box_segments(box: np.ndarray) -> np.ndarray:
    """Line segments (pairs of 3D points) of a periodic box's outline."""
    b = pad3(np.asarray(box, float)[None])[0]
    if len(box) == 2:
        c = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]],
                     dtype=np.float32)
        return c * b
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float32)
    segs = []
    for i in range(8):
        for j in range(i + 1, 8):
            if np.sum(np.abs(corners[i] - corners[j])) == 1:
                segs += [corners[i], corners[j]]
    return np.array(segs, dtype=np.float32) * b


def default_camera(system, size: float) -> dict:
    """Turntable camera parameters (center, scale_factor, elevation, azimuth,
    fov) that frame ``system`` by its bounding sphere (of the periodic box or
    of the particles, plus one sphere radius ``size``), so that it fits in
    the view from any direction; 2D systems are seen from above."""
    q = pad3(system.positions)
    if system.box is not None:
        lo, hi = np.zeros(3), pad3(system.box[None])[0]
    else:
        lo, hi = q.min(0), q.max(0)
    radius = 0.5 * float(np.linalg.norm(hi - lo)) + size
    flat = system.dim == 2
    return {"center": tuple(float(x) for x in 0.5 * (lo + hi)), "scale_factor": max(2.1 * radius, 1.0),
            "elevation": 90.0 if flat else 25.0, "azimuth": 0.0 if flat else 30.0, "fov": FOV}


def camera_from(state: dict | None, system, size: float) -> dict:
    """Turntable camera parameters: a saved camera state (the studio's
    current one) where it has a centre and a scale, else
    :func:`default_camera`."""
    if state:
        out = {k: state[k] for k in CAMERA_KEYS if k in state}
        if "center" in out and "scale_factor" in out:
            out["center"] = tuple(float(x) for x in out["center"])
            out.setdefault("fov", FOV)
            out.setdefault("elevation", 25.0)
            out.setdefault("azimuth", 30.0)
            return out
    return default_camera(system, size)
