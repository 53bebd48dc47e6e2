"""The paper's frame encoding in torch, and its exact adjoint
(docs/method.md section 2.1).

Subtract the centre c = (1/N) sum_j q_j, build an orthonormal frame B
(columns e_1..e_d) from the particles and express positions and momenta in
it: q_bar = (q - c) B, p_bar = p B.

The frame rule, deterministic (ties go to the lower particle index):

1. x_i = q_i - c; order particles by (-|x_i|, i) (rule ``"farthest"``, the
   default) or by (|x_i|, i) (rule ``"nearest"``, the paper's); a stable
   ``torch.argsort``.
2. a = the first particle in that order with |x_i| > 1e-12 * max(1, max |x|);
   e_1 = x_a / |x_a|. (If every particle sits at the centre, e_1 is the first
   axis and the frame does not depend on q.)
3. 2D: e_2 = e_1 turned by +90 degrees, (-e_1y, e_1x).
   3D: b = the next particle in the order (b != a) whose component
   u = x_b - (x_b . e_1) e_1 orthogonal to e_1 has |u| > 1e-6 |x_b|;
   e_2 = u / |u|, e_3 = e_1 x e_2. If no particle qualifies (all collinear),
   x_b is replaced by the coordinate axis least aligned with e_1 (lowest
   index on ties), which then does not depend on q.

The choice of a and b is discrete (:func:`choose`, no gradient); the basis
built from x_a and x_b (:func:`basis`) is smooth and differentiable by
autograd, which the gradient-trained networks use.

Why "farthest" is the default: in a lattice whose centre holds a particle
(3x3x3, odd n x n), the nearest particle sits within a displacement of c, so
e_1 = x_a / |x_a| turns through any angle as the particles move by 0.1, and
every frame coordinate q_bar becomes a wildly varying function of q that the
random features must fit. The farthest particle is at the lattice's radius,
so e_1 (and e_2) turn by about displacement / radius. Measured on the 3x3x3
harmonic benchmark (SWIM, 500 training snapshots): test derivative MSE
4.2e-3 -> 2.1e-3 at node width 16 and 4.6e-4 -> 1.0e-4 at node width 64
(medians over fit seeds 0-2; docs/method.md section 10.1).

The frame jumps where the order changes (that is the paper's method); between
jumps it is smooth and :func:`frame_adjoint` gives the exact gradient through
c and B: with G_i = dPhi/dq_bar_i and P_i = dPhi/dp_bar_i (per feature),
Y_i = G_i B^T, plus the terms through dB/dx_a and dB/dx_b, and finally
dPhi/dq_j = Y_j - (1/N) sum_i Y_i, dPhi/dp_j = P_j B^T. The cost is
O(S * L * N * d^2); no dense Jacobian is formed.

The frame encoding needs a non-periodic system (a centre of mass is not
defined in a periodic box).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.errors import HGNError
from . import CENTRE_TOLERANCE, COLLINEAR_TOLERANCE, DEFAULT_FRAME_RULE, FRAME_RULES

__all__ = ["CENTRE_TOLERANCE", "COLLINEAR_TOLERANCE", "DEFAULT_FRAME_RULE", "FRAME_RULES", "Frame", "basis",
           "build_frame", "check_rule", "choose", "encode", "frame_adjoint"]


@dataclass
class Frame:
    """The frame of a batch of S snapshots (N particles, d dimensions); tensors."""

    x: torch.Tensor  # (S, N, d) centred positions
    B: torch.Tensor  # (S, d, d) orthonormal columns e_1..e_d
    a: torch.Tensor  # (S,) particle that defines e_1, or -1 (fixed axis)
    b: torch.Tensor  # (S,) particle that defines e_2 in 3D, or -1 (fixed axis / 2D)
    norm_a: torch.Tensor  # (S,) |x_a| (1 where a = -1)
    xb: torch.Tensor  # (S, d) the vector used for e_2 in 3D (x_b or the fixed axis)
    norm_u: torch.Tensor  # (S,) |u| in 3D (1 in 2D)


def check_rule(rule: str) -> None:
    if rule not in FRAME_RULES:
        raise HGNError(f"frame rule {rule!r} is not one of {', '.join(FRAME_RULES)}")


def choose(q: torch.Tensor, rule: str = DEFAULT_FRAME_RULE):
    """The discrete part of the frame of q (S, N, d): (a, b, fixed_axis) with
    a, b (S,) int64 (-1: none) and fixed_axis (S, d) the axis used for e_2
    where b = -1 in 3D (zeros elsewhere). No gradient."""
    check_rule(rule)
    with torch.no_grad():
        q = q.detach()
        S, N, d = q.shape
        dev = q.device
        x = q - q.mean(1, keepdim=True)
        norms = torch.sqrt((x * x).sum(-1))
        order = torch.argsort(norms if rule == "nearest" else -norms, dim=1, stable=True)
        rows = torch.arange(S, device=dev)
        tol = CENTRE_TOLERANCE * torch.clamp(norms.max(1).values if N else torch.zeros(S, device=dev), min=1.0)
        ok = torch.gather(norms, 1, order) > tol[:, None]
        has = ok.any(1)
        first = torch.argmax(ok.to(torch.int8), dim=1)
        none = torch.full((S,), -1, dtype=torch.int64, device=dev)
        a = torch.where(has, order[rows, first], none)
        fixed = torch.zeros((S, d), dtype=q.dtype, device=dev)
        if d != 3:
            return a, none, fixed
        e1 = _e1(x, a)
        proj = (x * e1[:, None, :]).sum(-1)
        perp = x - proj[:, :, None] * e1[:, None, :]
        perp_norm = torch.sqrt((perp * perp).sum(-1))
        cand = (perp_norm > COLLINEAR_TOLERANCE * norms) & (norms > tol[:, None])
        cand &= torch.arange(N, device=dev)[None, :] != a[:, None]  # never a itself
        cand_sorted = torch.gather(cand, 1, order)
        hasb = cand_sorted.any(1)
        firstb = torch.argmax(cand_sorted.to(torch.int8), dim=1)
        b = torch.where(hasb, order[rows, firstb], none)
        axis = torch.argmin(torch.abs(e1), dim=1)
        fixed = torch.eye(3, dtype=q.dtype, device=dev)[axis] * (~hasb)[:, None].to(q.dtype)
        return a, b, fixed


def _e1(x, a):
    S, N, d = x.shape
    rows = torch.arange(S, device=x.device)
    xa = x[rows, a.clamp(min=0)]
    na = torch.sqrt((xa * xa).sum(-1))
    has = a >= 0
    axis0 = torch.zeros_like(xa)
    axis0[:, 0] = 1.0
    na = torch.where(has, na, torch.ones_like(na))
    return torch.where(has[:, None], xa / na[:, None], axis0)


def basis(x: torch.Tensor, a, b, fixed):
    """(B (S, d, d), norm_a (S,), xb (S, d), norm_u (S,)) from centred
    positions x (S, N, d) and the discrete choice of :func:`choose`;
    differentiable wrt x by autograd."""
    S, N, d = x.shape
    rows = torch.arange(S, device=x.device)
    has = a >= 0
    xa = x[rows, a.clamp(min=0)]
    na = torch.sqrt((xa * xa).sum(-1))
    na = torch.where(has, na, torch.ones_like(na))
    axis0 = torch.zeros_like(xa)
    axis0[:, 0] = 1.0
    e1 = torch.where(has[:, None], xa / na[:, None], axis0)
    if d == 2:
        e2 = torch.stack([-e1[:, 1], e1[:, 0]], 1)
        ones = torch.ones_like(na)
        return torch.stack([e1, e2], 2), na, torch.zeros_like(xa), ones
    hasb = b >= 0
    xb = torch.where(hasb[:, None], x[rows, b.clamp(min=0)], fixed)
    u = xb - (xb * e1).sum(-1, keepdim=True) * e1
    nu = torch.sqrt((u * u).sum(-1))
    e2 = u / nu[:, None]
    e3 = torch.linalg.cross(e1, e2, dim=1)
    return torch.stack([e1, e2, e3], 2), na, xb, nu


def build_frame(q: torch.Tensor, rule: str = DEFAULT_FRAME_RULE, choice=None) -> Frame:
    """Frame of each snapshot of q (S, N, d); ``rule`` is one of
    :data:`FRAME_RULES` (see the module notes). ``choice``: (a, b, fixed)
    from :func:`choose` when already made."""
    a, b, fixed = choose(q, rule) if choice is None else choice
    x = q - q.mean(1, keepdim=True)
    B, na, xb, nu = basis(x, a, b, fixed)
    return Frame(x, B, a, b, na, xb, nu)


def encode(frame: Frame, p: torch.Tensor):
    """(q_bar, p_bar) = ((q - c) B, p B), each (S, N, d)."""
    return torch.bmm(frame.x, frame.B), torch.bmm(p, frame.B)


def _cross(u, v):
    """u x v along axis 1 for (S, 3, L) (or broadcastable) tensors."""
    return torch.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
                        u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                        u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], 1)


def frame_adjoint(frame: Frame, p: torch.Tensor, G: torch.Tensor, P: torch.Tensor):
    """Exact gradients wrt (q, p) from gradients wrt (q_bar, p_bar).

    G, P: (S, N, d, L) = dPhi/dq_bar and dPhi/dp_bar for L outputs (features,
    or L = 1 for a contracted H). Returns (dPhi/dq, dPhi/dp), each (S, N, d, L).
    """
    B, x = frame.B, frame.x
    S, N, d = x.shape
    Y = torch.einsum("sjk,sikl->sijl", B, G)  # G_i B^T
    dp = torch.einsum("sjk,sikl->sijl", B, P)  # P_i B^T
    # M[s, j, k, l] = sum_i x_ij G_ikl + p_ij P_ikl = dPhi/dB_jk
    M = torch.einsum("sij,sikl->sjkl", x, G) + torch.einsum("sij,sikl->sjkl", p, P)
    e1 = B[:, :, 0][:, :, None]  # (S, d, 1)
    gE1 = M[:, :, 0].clone()  # (S, d, L)
    rows = torch.arange(S, device=x.device)
    if d == 2:
        # e2 = J e1, J = [[0, -1], [1, 0]]; J^T g = (g_y, -g_x)
        gE2 = M[:, :, 1]
        gE1[:, 0] += gE2[:, 1]
        gE1[:, 1] -= gE2[:, 0]
    else:
        e2 = B[:, :, 1][:, :, None]
        gE2 = M[:, :, 1].clone()
        gE3 = M[:, :, 2]
        gE1 += _cross(e2, gE3)  # through e3 = e1 x e2
        gE2 += _cross(gE3, e1)
        nu = frame.norm_u[:, None, None]
        gU = (gE2 - e2 * (e2 * gE2).sum(1, keepdim=True)) / nu
        gUe1 = (gU * e1).sum(1, keepdim=True)
        xb = frame.xb[:, :, None]
        gb = gU - e1 * gUe1
        gE1 += -gUe1 * xb - (xb * e1).sum(1, keepdim=True) * gU
        has_b = frame.b >= 0
        Y[rows, frame.b.clamp(min=0)] += gb * has_b[:, None, None].to(gb.dtype)
    ga = (gE1 - e1 * (e1 * gE1).sum(1, keepdim=True)) / frame.norm_a[:, None, None]
    has_a = frame.a >= 0
    Y[rows, frame.a.clamp(min=0)] += ga * has_a[:, None, None].to(ga.dtype)
    dq = Y - Y.mean(1, keepdim=True)
    return dq, dp


def check_frame_graph(graph) -> None:
    if graph.box is not None:
        raise HGNError("the frame encoding needs a non-periodic system (a periodic box has no centre of mass); "
                       "use the invariant encoding")
