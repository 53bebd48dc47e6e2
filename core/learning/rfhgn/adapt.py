"""Few-shot adaptation (issue 14; docs/adapt.md): keep the sampled hidden
layers of a fitted model (or a saved basis, :mod:`.basis`) and solve only
the output layer on k snapshots of a new system.

The normal equations of the k snapshots are assembled by the fit's own code
(:func:`core.learning.rfhgn.fitting.assemble`; nothing is re-sampled) and
each block (kinetic / potential for separable networks) is solved by
:func:`core.learning.rfhgn.fitting.solve_block` with a regularisation chosen
per block by generalised cross-validation (GCV) on the column-scaled normal
matrix A = D^-1 Z^T Z D^-1 (D the column norms of Z, as in the fit):

    A = V diag(w) V^T,  c = V^T D^-1 Z^T u,  n = rows of the block
    RSS(lam) = RSS(0) + sum c^2 lam^2 / (w (w+lam)^2)
    RSS(0)   = max(u.u - sum c^2/w, 0)   (eigenvalues above L eps max w)
    df(lam)  = sum w/(w+lam)
    GCV(lam) = n RSS(lam) / (n - df(lam))^2

over the grid lam = 10^-14 ... 10^0 (29 values, half decades); the smallest
GCV wins. One eigendecomposition of an L x L block serves the whole grid,
so the rule costs about one extra solve. GCV is the rotation-invariant
form of leave-one-out; exact leave-one-out would need each row's leverage,
which the summed normal equations no longer hold. ``rule="cv"`` instead
holds out whole snapshots (:func:`cv_choice`; the rows of one snapshot are
correlated, which GCV ignores), at the price of assembling the folds
separately.

From a fitted model the ridge may pull toward the model's own theta
(``prior``): |Z x - u|^2 + lam |D (x - x0)|^2 is the same problem in
y = x - x0 with u - Z x0, i.e. b - G x0 and u.u - 2 x0.b + x0.G x0, so the
rule scores it like any block; ``prior="auto"`` (default) keeps, per block,
the better-scored of x0 = 0 and x0 = theta_source. Measured choices:
docs/adapt.md.
"""
from __future__ import annotations

import copy
import time
import warnings

import numpy as np

from core.errors import HGNError
from core.learning.hgn.device import blas_threads, resolve_device, torch_threads
from core.learning.hgn.network import HGN
from core.physics.trajectory import Dataset
from ..learned import training_source
from .config import RFConfig
from .fitting import Group, assemble, energy_constant, fit_threads
from .model import FittedModel

#: the GCV grid of relative regularisations (the normal matrix is scaled to a unit diagonal)
LAMBDA_GRID = tuple(10.0 ** e for e in np.arange(-14.0, 0.01, 0.5))


def gcv_choice(G: np.ndarray, b: np.ndarray, uu: float, rows: int, grid=LAMBDA_GRID) -> tuple[float, dict]:
    """The relative regularisation of ``grid`` with the smallest GCV score
    for the block ``G = Z^T Z``, ``b = Z^T u``, ``uu = u.u`` of ``rows`` rows
    (module notes); returns it and a dict with the scores and the
    effective rank (eigenvalues above L * eps * max of the scaled matrix)."""
    n_cols = len(b)
    if n_cols == 0:
        return float(grid[0]), {"gcv": [], "effective_rank": 0}
    dg = np.sqrt(np.clip(np.diag(G), 0.0, None))
    dg = np.where(dg > 0, dg, 1.0)
    A = G / dg[:, None] / dg[None, :]
    w, V = np.linalg.eigh(A)
    w = np.clip(w, 0.0, None)
    c2 = (V.T @ (b / dg)) ** 2
    pos = w > n_cols * np.finfo(float).eps * max(float(w.max()), 1e-300)
    rank = int(np.sum(pos))
    # RSS(lam) = RSS(0) + sum c^2 lam^2 / (w (w + lam)^2): the part that depends on lam without the
    # cancellation of u.u - ..., which would leave the choice to round-off on nearly exact data
    rss0 = max(uu - float(np.sum(c2[pos] / w[pos])), 0.0)
    scores = []
    for lam in grid:
        f = 1.0 / (w + lam)
        rss = rss0 + float(np.sum(c2[pos] * lam * lam / (w[pos] * (w[pos] + lam) ** 2)))
        df = float(np.sum(w * f))
        denom = max(rows - df, 1e-12) ** 2
        scores.append(rows * rss / denom)
    best = int(np.argmin(scores))
    return float(grid[best]), {"gcv": [float(s) for s in scores], "effective_rank": rank}


#: the rules that choose the regularisation (``regularisation=None``); see :func:`adapt`
RULES = ("cv", "gcv")
#: folds of the cross-validation over snapshots (leave-one-snapshot-out for k <= CV_FOLDS)
CV_FOLDS = 5


def fold_rows(rows: np.ndarray, folds: int = CV_FOLDS) -> list[np.ndarray]:
    """The snapshots ``rows`` dealt into min(k, folds) interleaved folds (one snapshot each for k <= folds)."""
    n = min(len(rows), int(folds))
    return [np.asarray(rows[i::n]) for i in range(n)]


def cv_choice(folds: list, grid=LAMBDA_GRID) -> tuple[float, dict]:
    """The relative regularisation of ``grid`` with the smallest cross-validated residual, the folds
    being groups of whole snapshots: ``folds`` = [(G_f, b_f, u_f.u_f, rows_f)] of one block, one per fold.
    For each fold f the block without it, A_-f = D^-1 (G - G_f) D^-1 (D the column norms of the whole
    block, so lam means what it means in the solve), is diagonalised once and every lam of the grid
    costs a product: x(lam) = D^-1 V (V^T D^-1 (b - b_f)) / (w + lam), and the held-out residual
    |Z_f x - u_f|^2 = x.G_f x - 2 x.b_f + u_f.u_f is summed over the folds. Returns lam and a dict with
    the scores, the number of folds and the effective rank of the whole block."""
    G = sum(f[0] for f in folds)
    b = sum(f[1] for f in folds)
    n_cols = len(b)
    if n_cols == 0:
        return float(grid[0]), {"cv": [], "effective_rank": 0, "folds": len(folds)}
    dg = np.sqrt(np.clip(np.diag(G), 0.0, None))
    dg = np.where(dg > 0, dg, 1.0)
    w_all = np.linalg.eigvalsh(G / dg[:, None] / dg[None, :])
    rank = int(np.sum(w_all > n_cols * np.finfo(float).eps * max(float(w_all.max()), 1e-300)))
    lams = np.asarray(grid, dtype=np.float64)
    scores = np.zeros(len(lams))
    for Gf, bf, uf, _ in folds:
        w, V = np.linalg.eigh((G - Gf) / dg[:, None] / dg[None, :])
        keep = w > n_cols * np.finfo(float).eps * max(float(w.max()), 1e-300)
        c = (V.T @ ((b - bf) / dg))[keep]
        # x for every lam at once: (n_cols, n_lam)
        X = (V[:, keep] @ (c[:, None] / (w[keep][:, None] + lams[None, :]))) / dg[:, None]
        scores += np.einsum("il,ij,jl->l", X, Gf, X) - 2.0 * (bf @ X) + float(uf)
    best = int(np.argmin(scores))
    return float(lams[best]), {"cv": [float(x) for x in scores], "effective_rank": rank, "folds": len(folds)}


def _parts(model_or_basis):
    """(network, config, source dict, train_r range) of a FittedModel or a Basis."""
    from .basis import Basis

    if isinstance(model_or_basis, FittedModel):
        info = model_or_basis.info or {}
        src = {"kind": "model", "n_snapshots": info.get("n_snapshots"),
               "system": getattr(model_or_basis.train_system, "name", None)}
        rng = (info.get("train_r_min"), info.get("train_r_max"))
        return model_or_basis.network, model_or_basis.config, src, rng
    if isinstance(model_or_basis, Basis):
        return model_or_basis.network, model_or_basis.config, dict(model_or_basis.source, kind="basis"), \
            (model_or_basis.source.get("train_r_min"), model_or_basis.source.get("train_r_max"))
    raise HGNError(f"adapt needs a fitted model or a basis, got {type(model_or_basis).__name__}")


def _check_compatible(network: HGN, dataset: Dataset) -> None:
    d = dataset.system.dim
    if int(network.dim) != d:
        raise HGNError(f"the basis is for {network.dim}D systems, the data are {d}D; "
                       f"sample a basis on {d}D data")
    if network.encoding == "invariant" and dataset.system.edges is None and dataset.system.cutoff is None:
        raise HGNError("the data's system has neither edges nor a cutoff; the invariant basis needs a graph")


def _port_spec(port, system):
    """The PortSpec adapt identifies: ``port`` None -> the data's own port terms (none for undamped,
    undriven data); a PortSpec as given (``PortSpec("none")``: a plain Hamiltonian output layer)."""
    from core.physics.port import port_of
    from .port import PortSpec

    if port is None:
        if port_of(system) is None:
            return None
        spec = PortSpec.from_system(system)
    elif isinstance(port, PortSpec):
        spec = port.check(system)
    else:
        raise HGNError(f"port must be a core.learning.rfhgn.port.PortSpec or None, got {type(port).__name__}")
    return spec if spec.n_columns(system.n, system.dim) else None


def _source_coef(model_or_basis, spec, n: int, d: int) -> np.ndarray | None:
    """The source model's port coefficients as the solve's vector when it identified the same terms
    (``info["port"]["spec"]`` equal to ``spec``), else None."""
    info = getattr(model_or_basis, "info", None)
    ident = info.get("port") if isinstance(info, dict) else None
    if not isinstance(ident, dict) or ident.get("spec") != spec.to_dict():
        return None
    parts = []
    if spec.damping != "none":
        parts.append(np.atleast_1d(np.asarray(ident["damping"], dtype=np.float64)))
    f = ident.get("forcing") or {}
    for wi in range(len(spec.frequencies)):
        parts.append(np.asarray(f["cos"][wi], dtype=np.float64).ravel())
        parts.append(np.asarray(f["sin"][wi], dtype=np.float64).ravel())
    if spec.field:
        parts.append(np.asarray(ident["field"], dtype=np.float64))
    x = np.concatenate(parts) if parts else np.zeros(0)
    return x if x.shape == (spec.n_columns(n, d),) and np.all(np.isfinite(x)) else None


def _block_prior(name: str, network: HGN, theta0: np.ndarray, coef0: np.ndarray) -> np.ndarray:
    """The prior's vector of one block in the solve's column order (theta part, then port columns)."""
    if name == "p":
        return theta0[network.p_cols]
    if name == "q":
        return np.concatenate([theta0[network.q_cols], coef0])
    return np.concatenate([theta0, coef0])


PRIORS = ("none", "source", "auto")


def adapt(model_or_basis, dataset: Dataset, k: int | None = None, config: RFConfig | None = None,
          seed: int | None = None, regularisation: float | None = None, *, port=None,
          prior: str = "auto", rule: str = "gcv") -> FittedModel:
    """A model with the hidden layers of ``model_or_basis`` (a FittedModel or
    a :class:`.basis.Basis`) and an output layer solved on ``k`` training
    snapshots of ``dataset`` (None: all): the first k of ``dataset.train``,
    or a choice of k of them drawn with ``seed`` when a seed is given.
    ``regularisation``: None chooses it per block by ``rule`` (module notes),
    a number fixes it (relative, as ``RFConfig.regularisation``). ``config``
    overrides the basis' settings for the assembly (batch sizes, device,
    solver); its layer widths must match.

    ``port``: the damping and forcing identified in the same solve
    (:class:`core.learning.rfhgn.port.PortSpec`); None: the data's own
    (``PortSpec.from_system``; nothing for undamped, undriven data). The
    rows and the solve are :mod:`.port`'s (``_assemble``, ``_solve``), so the
    model carries ``info["port"]`` like a :func:`~.port.fit_port` model and
    rolls out with :func:`~.port.rollout_port`.

    ``rule`` (with ``regularisation=None``): ``"gcv"`` (default; generalised
    cross-validation on the summed normal equations, module notes) or
    ``"cv"`` (cross-validation over whole snapshots, :func:`cv_choice`: the
    k snapshots in min(k, 5) folds assembled separately; k = 1 falls back to
    GCV).

    ``prior``: what the ridge pulls toward: ``"none"`` (0), ``"source"``
    (the source model's theta and, for the same port terms, its
    coefficients: ``lam |D (x - x_source)|^2``) or ``"auto"`` (default: per
    block, whichever of the two the rule scores lower; with a fixed
    ``regularisation`` there is no score and it is ``"none"``). From a
    basis, ``"source"`` is the theta it keeps (:class:`.basis.Basis`;
    HGNError when it has none) and ``"auto"`` is ``"none"`` (measured: the
    pooled theta gained nothing under GCV's choice; docs/adapt.md).

    ``info["adapt"]``: k, the chosen regularisation per block, the rule's
    scores per block and prior, the effective rank, the prior used
    (``prior``: none/source/mixed, ``prior_blocks``), the basis' source
    and the adapt time (seconds, data in memory to model)."""
    from types import SimpleNamespace

    from . import port as port_fit

    t0 = time.perf_counter()
    base_net, base_cfg, source, (r_min0, r_max0) = _parts(model_or_basis)
    config = RFConfig.checked(base_cfg if config is None else config)
    if not isinstance(dataset, Dataset):
        raise HGNError(f"adapt needs a Dataset, got {type(dataset).__name__}")
    if rule not in RULES:
        raise HGNError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if prior not in PRIORS:
        raise HGNError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    if regularisation is not None and not (isinstance(regularisation, (int, float)) and
                                           np.isfinite(regularisation) and regularisation >= 0):
        raise HGNError(f"regularisation must be a number >= 0 (or None for the GCV choice), got {regularisation!r}")
    _check_compatible(base_net, dataset)
    system = dataset.system
    spec = _port_spec(port, system)
    train, q, p, dqdt, dpdt = training_source(dataset)
    if k is None:
        k = len(train)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise HGNError(f"k (snapshots) must be a whole number, got {k!r}")
    k = int(k)
    if k < 1 or k > len(train):
        raise HGNError(f"k (snapshots) must be between 1 and the {len(train)} training snapshots, got {k}")
    rows = train[:k] if seed is None else np.sort(np.random.default_rng(seed).choice(train, k, replace=False))
    dataset.check_trainable(rows)
    t_snap = None if spec is None else port_fit._times(dataset, spec)
    device = resolve_device(config.device)
    network = copy.deepcopy(base_net)
    if network.device != device:
        network = network.to(device)
    threads = fit_threads(config, [system], device)
    c = 0 if spec is None else spec.n_columns(system.n, system.dim)
    theta0 = np.zeros(network.L)
    coef0 = np.zeros(c)
    source_theta = model_or_basis.theta  # a FittedModel's, or a Basis' (None: a basis without one)
    if prior == "source" and source_theta is None:
        raise HGNError("prior='source' needs the source's output layer, and this basis has none (a basis file "
                       "written before bases kept theta); sample the basis again, or use prior='none' or 'auto'")
    # a basis' theta (a pooled fit's compromise) is used only when asked for: "auto" on a basis is "none"
    # (measured, docs/adapt.md "A prior for a basis": GCV's per-block choice gained nothing, lost 1.65x once)
    if (prior == "source" or (prior == "auto" and isinstance(model_or_basis, FittedModel))) and \
            source_theta is not None:
        theta0 = np.asarray(source_theta, dtype=np.float64).reshape(-1).copy()
        if spec is not None and isinstance(model_or_basis, FittedModel):
            got = _source_coef(model_or_basis, spec, system.n, system.dim)
            coef0 = coef0 if got is None else got
    has_prior = prior != "none" and bool(np.any(theta0) or np.any(coef0))
    # the candidates: ridge toward 0 and/or toward the source ("auto": both, the rule's score decides per block)
    # (a fixed regularisation leaves nothing to score: "auto" is then the plain ridge)
    candidates = ("none",) if not has_prior or (prior == "auto" and regularisation is not None) else (
        ("source",) if prior == "source" else ("none", "source"))
    scored = regularisation is None
    use_cv = scored and rule == "cv" and k >= 2
    used = "given" if regularisation is not None else ("cv" if use_cv else "gcv")
    grid = LAMBDA_GRID
    record: dict = {}
    with torch_threads(threads), blas_threads(threads):
        # cross-validation needs the normal equations of each fold of snapshots: assembled fold by fold
        # (their sums are the whole block's), else in one go
        folds, cache = [], {}
        for part in (fold_rows(rows) if use_cv else [rows]):
            if spec is None:
                group = Group(system, q, p, dqdt, dpdt, part, device)
                fb = assemble(network, [group], config, record=record, fixed=cache).blocks
            else:
                pne, (r_min, r_max), k_max = port_fit._assemble(network, system, q, p, dqdt, dpdt, t_snap, part,
                                                                spec, config, device, None)
                fb = pne.blocks
                record.update(r_max=max(r_max, record.get("r_max", 0.0)), k_max=max(k_max, record.get("k_max", 0.0)))
                if np.isfinite(r_min):
                    record["r_min"] = min(r_min, record.get("r_min", np.inf))
            folds.append(fb)
        chosen, scores, ranks, priors, blocks, x0 = {}, {}, {}, {}, {}, {}
        for name in folds[0]:
            best = None
            for cand in candidates:
                fl = [fb[name] for fb in folds]
                v = None
                if cand == "source":
                    # ridge toward x0: with y = x - x0 the problem is |Z y - (u - Z x0)|^2 + lam |D y|^2 (every
                    # fold shifted alike, so the folds still sum to the whole block)
                    v = _block_prior(name, network, theta0, coef0)
                    fl = [[G, b - G @ v, float(uu - 2.0 * v @ b + v @ G @ v), n] for G, b, uu, n in fl]
                tot = [sum(f[i] for f in fl) for i in range(4)]
                tot[2] = max(float(tot[2]), 0.0)
                if use_cv:
                    lam, g = cv_choice(fl, grid)
                    sc, rank = g["cv"], g["effective_rank"]
                elif scored:
                    lam, g = gcv_choice(*tot, grid)
                    sc, rank = g["gcv"], g["effective_rank"]
                else:
                    lam, sc, rank = float(regularisation), None, None
                score = min(sc) if sc else 0.0
                if best is None or score < best[0]:
                    best = (score, cand, lam, tot, v)
                if sc is not None:
                    scores.setdefault(name, {})[cand] = sc
                    ranks[name] = rank
            _, priors[name], chosen[name], blocks[name], v = best
            if v is not None:
                x0[name] = v
            n_rows, n_cols = blocks[name][3], len(blocks[name][1])
            if regularisation is None and ranks[name] < n_cols and n_rows < n_cols:
                warnings.warn(f"adapt: {k} snapshots give {n_rows} rows for the {n_cols} features of block "
                              f"'{name}' (effective rank {ranks[name]}); the output layer is underdetermined "
                              "and rests on the regularisation; use more snapshots", stacklevel=2)
        theta, coef, sinfo = port_fit._solve(SimpleNamespace(blocks=blocks), network, c, config, chosen)
        for name in x0:  # back from y = x - x0
            if name == "p":
                theta[network.p_cols] += theta0[network.p_cols]
            else:
                theta[network.q_cols if name == "q" else slice(0, network.L)] += \
                    theta0[network.q_cols if name == "q" else slice(0, network.L)]
                coef = coef + coef0
        network.set_theta(theta)
        constant, known = 0.0, False
        energy = np.asarray(dataset.energy, dtype=np.float64).reshape(-1)
        if energy.shape == (dataset.n_snapshots,) and np.isfinite(energy[rows[0]]):
            constant = energy_constant(network, system, q[rows[0]], p[rows[0]], energy[rows[0]], device)
            known = True
    e_ref = None if system.edges is None else len(system.edges)
    model = FittedModel(config, network, None, constant, system.n, system, e_ref=e_ref)
    r_max = max(x for x in (record.get("r_max"), r_max0, 0.0) if x is not None)
    r_mins = [x for x in (record.get("r_min"), r_min0) if x is not None and np.isfinite(x)]
    elapsed = time.perf_counter() - t0
    model.info.update(
        n_snapshots=k, n_particles=int(system.n), n_features=int(network.L), n_rows=int(sinfo["rows"]),
        train_mse=float(sinfo["train_mse"]), energy_constant_known=known,
        train_r_max=r_max, train_r_min=min(r_mins) if r_mins else None,
        train_k_max=max(record.get("k_max", 0.0), float((model_or_basis.info or {}).get("train_k_max", 0.0))
                        if isinstance(model_or_basis, FittedModel) else record.get("k_max", 0.0)),
        source="adapt" if spec is None else "adapt (port)", threads=threads, device=str(device),
        fit_time=elapsed,
        adapt={"k": k, "snapshots": [int(i) for i in rows[:50]], "seed": seed,
               "regularisation": chosen, "rule": used, "folds": len(folds) if use_cv else None,
               "prior": priors[next(iter(priors))] if len(set(priors.values())) == 1 else "mixed",
               "prior_asked": prior, "prior_blocks": priors, "scores": scores, "effective_rank": ranks,
               "basis": source, "adapt_time": elapsed},
    )
    if spec is not None:
        model.info["port"] = port_fit.identified(spec, coef, system.n, system.dim)
    return model


def adapt_series(model_or_basis, trajectories, k: int | None = None, order: int = 4, **options) -> FittedModel:
    """:func:`adapt` from time series without derivatives: ``k`` consecutive
    snapshots from the start of the first trajectory (None: every interior
    frame of every trajectory), their dq/dt and dp/dt by central differences
    of ``order`` 2 or 4 (:func:`core.learning.rfhgn.port.series_dataset`, the
    differences ``fit_port_time_series`` uses), so k snapshots read
    k + 4 frames at order 4 (k + 2 at order 2); the energy constant from the
    first snapshot's recorded energy. Frames h apart give rows consistent
    with the data to O(h^order). ``options``: :func:`adapt`'s keywords
    (``regularisation``, ``config``, ``port``, ``prior``; not ``seed``: the
    snapshots are consecutive). ``info["adapt"]["series"]``: order, frames read,
    spacing; ``adapt_time`` includes the differencing."""
    from dataclasses import replace

    from core.physics.trajectory import Trajectory
    from .port import STENCILS, series_dataset

    t0 = time.perf_counter()
    if "seed" in options:
        raise HGNError("adapt_series takes consecutive frames; a seed (random snapshots) does not apply")
    trajs = [trajectories] if isinstance(trajectories, Trajectory) else (
        list(trajectories) if isinstance(trajectories, (list, tuple)) else None)
    if not trajs or not all(isinstance(t, Trajectory) for t in trajs):
        raise HGNError(f"adapt_series needs a Trajectory or a list of them, got {type(trajectories).__name__}")
    if order not in STENCILS:
        raise HGNError(f"the finite-difference order must be one of {sorted(STENCILS)}, got {order!r}")
    reach = max(STENCILS[order][0])
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise HGNError(f"k (snapshots) must be a whole number >= 1, got {k!r}")
        need = int(k) + 2 * reach
        first = trajs[0]
        if first.n_frames < need:
            raise HGNError(f"{k} snapshots by order-{order} differences need {need} consecutive frames; the first "
                           f"trajectory has {first.n_frames} (ask for at most {max(first.n_frames - 2 * reach, 0)})")
        trajs = [replace(first, t=first.t[:need], q=first.q[:need], p=first.p[:need],
                         kinetic=first.kinetic[:need], potential=first.potential[:need],
                         momentum=first.momentum[:need])]
    ds = series_dataset(trajs, order)
    model = adapt(model_or_basis, ds, None, **options)
    elapsed = time.perf_counter() - t0
    h = float(trajs[0].t[1] - trajs[0].t[0])
    model.info["adapt"].update(series={"order": order, "frames": int(sum(t.n_frames for t in trajs)),
                                       "trajectories": len(trajs), "spacing": h}, adapt_time=elapsed)
    model.info.update(fit_time=elapsed, source=f"{model.info['source']} from time series (order-{order} "
                                               "central differences)")
    return model
