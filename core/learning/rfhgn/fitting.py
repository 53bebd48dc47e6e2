"""The linear solve (docs/method.md sections 4 and 5).

For every snapshot s, particle i and axis k, Hamilton's equations give two
rows linear in theta:

    dPhi/dp_ik (y_s) . theta =  dq_ik/dt (s)
   -dPhi/dq_ik (y_s) . theta =  dp_ik/dt (s)

The normal equations Z^T Z theta = Z^T u are assembled batch by batch of
snapshots in float64 (memory O(L^2 + batch), whatever the number of
snapshots). For separable (invariant) models Z^T Z is block-diagonal: the
kinetic block only sees the dq/dt rows and the potential block only the
dp/dt rows, and each is solved on its own. The solve scales the columns of Z
to unit norm, adds ``regularisation`` * I, and uses a Cholesky factorisation;
when that fails or leaves a large residual (ill-conditioned), a symmetric
eigen-decomposition with small eigenvalues cut off (a least-squares
solution) takes over. The energy constant c comes from one known energy:
H(y_0) = theta . Phi(y_0) + c for the first training snapshot.

Devices and threads: the Jacobians are computed batch by batch on
``config.device`` (CPU or CUDA) by the torch network's analytic forward mode
(:meth:`core.learning.hgn.network.HGN.jacobians`), and Z^T Z, Z^T u are
accumulated there in float64 torch; only the small normal matrices (L x L)
come back to the CPU for the solve. On the CPU the fit runs with
``config.threads`` torch intra-op threads (0 = torch's setting). Memory is
O(L^2) plus one batch of Jacobians (``batch_size`` snapshots, capped by
``batch_memory_mb``; one snapshot is the smallest batch). Fixed graphs are
built once per batch size and reused.

Range: the hidden layers are sampled from the training inputs, so the fitted
pair function is accurate over the distances seen in training and degrades
outside (measured, 2x2x2 harmonic lattice at amplitude 0.1, training
distances 0.5-1.475: force error < 1e-5 inside, 1e-3 at r = 1.5, 2e-2 at
1.6, 0.2 at 1.8). Fit on data whose amplitude covers the states a rollout
will visit. A larger system at the same amplitude samples the tails of the
bond-length distribution further (a 16x16x16 lattice at sd 0.1 reaches
r = 1.59 where 500 snapshots of 2x2x2 reach 1.49): harmless for harmonic
springs (zero-shot 2x2x2 -> 16x16x16: Zerr 6e-5 after t = 20), fatal for
Morse unless the training amplitude is raised
(benchmarks/bench_training_range.py).

Time series without derivatives (section 5): with states at spacing h, the
symplectic Euler residual at the known point (q_{n+1}, p_n),

    (q_{n+1} - q_n)/h =  dH/dp (q_{n+1}, p_n)
    (p_{n+1} - p_n)/h = -dH/dq (q_{n+1}, p_n)

is linear in theta; the fitted function is the method's modified Hamiltonian,
and the first-order correction H ~ H_hat + (h/2) dH_hat/dq . dH_hat/dp is
projected back onto the same features (a second right-hand side with the
already factored normal matrix; its gradient needs Hessian-vector products of
the network, which come from torch autograd through ``HGN.features`` in float64).
"""
from __future__ import annotations

import math
import queue
import threading
import time
import warnings

import numpy as np
import scipy.linalg as sla
import torch

from core.errors import HGNError
from core.jobs import available_cores, check_cancel, report
from core.learning.hgn.device import blas_threads, resolve_device, torch_threads
from core.learning.hgn.fixed import FixedJacobians, _host, gemv_add_, gram_add_, quiet_csr, squares
from core.learning.hgn.graph import Graph
from core.learning.hgn.network import HGN
from ..learned import training_source
from core.physics.neighbours import minimum_image
from core.physics.system import System
from core.physics.trajectory import Dataset, Trajectory
from .config import RFConfig
from .model import FittedModel
from .sampling import choose_points, local_energies, sample_network

#: the Cholesky solution is accepted when the scaled normal equations are
#: solved to this relative residual
CHOLESKY_RESIDUAL = 1e-6


class Group:
    """Training rows of one system: states where the gradient is taken and
    the right-hand sides (dq/dt, dp/dt) there. The arrays (S_all, N, d)
    stay where they are (the dataset's own, never copied whole): ``rows``
    lists the training snapshots (None: all of them) and :meth:`batch`
    hands out float64 tensors on ``device`` batch by batch (views of the
    arrays when the snapshots are consecutive float64 rows on the CPU,
    otherwise a copy of the batch only), so the fit's memory does not grow
    with the number of snapshots."""

    def __init__(self, system: System, q, p, dqdt, dpdt, rows=None, device=None):
        self.system = system
        self.arrays = tuple(np.asarray(x) for x in (q, p, dqdt, dpdt))
        self.device = torch.device("cpu") if device is None else torch.device(device)
        n_all = self.arrays[0].shape[0]
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        self.n = n_all if self.rows is None else len(self.rows)
        self.offset = 0  # rows = offset + arange(n): slices instead of gathers
        if self.rows is not None and len(self.rows) and \
                np.array_equal(self.rows, np.arange(self.rows[0], self.rows[0] + len(self.rows))):
            self.offset, self.rows = int(self.rows[0]), None
        self.shape = (self.n,) + self.arrays[0].shape[1:]
        self._graphs: dict = {}

    def index(self, a: int, b: int):
        """Where training snapshots a..b lie in the arrays (a slice or indices)."""
        if self.rows is None:
            return slice(self.offset + a, self.offset + b)
        return self.rows[a:b]

    def tensor(self, x) -> torch.Tensor:
        """A (part of an) array as a float64 contiguous tensor on the device
        (no copy for float64 C-contiguous rows on the CPU)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if not x.flags.writeable:  # read-only data (a loaded file): only read here
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*not writable.*")
                t = torch.as_tensor(x)
        else:
            t = torch.from_numpy(x)
        return t if self.device.type == "cpu" else t.to(self.device)

    def batch(self, a: int, b: int, which=(0, 1, 2, 3)) -> tuple:
        """(q, p, dqdt, dpdt) of training snapshots a..b (or those listed in ``which``)."""
        i = self.index(a, b)
        return tuple(self.tensor(self.arrays[k][i]) for k in which)

    def graph(self, a: int, b: int, q) -> Graph:
        """The graph of snapshots a..b at positions q (fixed graphs: one per batch size, reused)."""
        if self.system.edges is None:
            return Graph.build(self.system, q, device=self.device)
        S = b - a
        g = self._graphs.get(S)
        if g is None:
            g = self._graphs[S] = Graph.build(self.system, q, device=self.device)
        return g


def _group(system, q, p, dqdt, dpdt, device, rows=None) -> Group:
    return Group(system, q, p, dqdt, dpdt, rows, device)


def _check_overlap(system: System, q) -> None:
    """No two particles of the snapshots q (a batch) on top of each other
    (fixed graphs; the fixed-graph fast path checks its own distances)."""
    if system.edges is None or not len(system.edges) or not q.shape[0]:
        return
    dl = q[:, system.edges[:, 0]] - q[:, system.edges[:, 1]]
    if system.box is not None:
        box = torch.as_tensor(system.box, dtype=torch.float64, device=q.device)
        dl = dl - box * torch.round(dl / box)
    if float((dl * dl).sum(-1).min()) <= 0:
        raise HGNError("two particles of a snapshot sit on top of each other (pair distance 0); "
                       "the pair features are undefined there")


# ======================================================================
class NormalEquations:
    """Z^T Z, Z^T u and u^T u, accumulated over batches in float64 torch on
    the network's device (blocks for separable networks)."""

    def __init__(self, network: HGN):
        self.network = network
        kw = dict(dtype=torch.float64, device=network.device)
        if network.separable:
            nT, nV = network.n_T, network.n_V
            self._blocks = {"p": [torch.zeros((nT, nT), **kw), torch.zeros(nT, **kw), torch.zeros((), **kw), 0],
                            "q": [torch.zeros((nV, nV), **kw), torch.zeros(nV, **kw), torch.zeros((), **kw), 0]}
        else:
            L = network.L
            self._blocks = {"all": [torch.zeros((L, L), **kw), torch.zeros(L, **kw), torch.zeros((), **kw), 0]}
        self._cpu = network.device.type == "cpu"
        self._numpy = {k: (v[0].numpy(), v[1].numpy()) for k, v in self._blocks.items()} if self._cpu else {}
        # sums of folded rows Z' (true rows Z = Z' diag(s)): (name, s bytes) -> [s, Z'^T Z', Z'^T u] (numpy)
        self._folded: dict = {}

    def add_rows(self, name: str, Z, u, sign: float = 1.0, scale=None) -> None:
        """Rows Z (R, cols) with right-hand sides u (R,) into block ``name``
        ("p", "q" or "all"). ``scale`` (numpy (cols,), CPU float64 only):
        Z holds folded rows Z' of the true rows Z' diag(scale)
        (:meth:`core.learning.hgn.fixed.FixedJacobians.rows_folded`); their
        sums are kept apart and scaled once in :attr:`blocks`."""
        blk = self._blocks[name]
        if self._cpu and not (Z.requires_grad or u.requires_grad) and Z.dtype == u.dtype == torch.float64:
            # NumPy on the CPU (OpenBLAS's syrk for Z^T Z, see core.learning.hgn.fixed.gram_add_), without
            # the per-call checks of the device-neutral helpers
            Zn, un = Z.numpy(), u.numpy()
            if scale is None:
                G, b = self._numpy[name]
            else:
                key = (name, scale.tobytes())
                acc = self._folded.get(key)
                if acc is None:
                    n = Zn.shape[1]
                    acc = self._folded[key] = [np.array(scale, dtype=np.float64), np.zeros((n, n)), np.zeros(n)]
                G, b = acc[1], acc[2]
            G += Zn.T @ Zn
            v = Zn.T @ un
            if sign == 1.0:
                b += v
            elif sign == -1.0:
                b -= v
            else:
                b += sign * v
            blk[2] += float(un @ un)
        else:
            if scale is not None:
                Z = Z * torch.as_tensor(scale, dtype=Z.dtype, device=Z.device)
            gram_add_(blk[0], Z)
            gemv_add_(blk[1], Z, u, sign)
            blk[2] += u @ u
        blk[3] += u.numel()

    def add(self, Jq, Jp, dqdt, dpdt) -> None:
        """The Jacobians of a batch (S, N, d, cols) and their right-hand sides."""
        Zp = Jp.reshape(-1, Jp.shape[-1])
        Zq = Jq.reshape(-1, Jq.shape[-1])
        up = dqdt.reshape(-1)
        uq = dpdt.reshape(-1)
        if self.network.separable:
            self.add_rows("p", Zp, up)
            self.add_rows("q", Zq, uq, -1.0)
        else:
            b = self._blocks["all"]
            gram_add_(b[0], Zp)
            gram_add_(b[0], Zq)
            gemv_add_(b[1], Zp, up)
            gemv_add_(b[1], Zq, uq, -1.0)
            b[2] += up @ up + uq @ uq
            b[3] += up.numel() + uq.numel()

    def add_kinetic(self, D, p, dqdt, masses, pp=None) -> None:
        """The kinetic rows of a fixed-graph batch from D = dPhi_T/dk
        (S*N, n_T) (:meth:`core.learning.hgn.fixed.FixedJacobians.kinetic`):
        the d rows of particle i are D p_ik / m_i, so they add
        |p_i|^2/m_i^2 D^T D and D^T (p_i . dq_i/dt) / m_i (D is scaled in
        place). ``pp``: |p_i|^2 (S*N,) numpy when known (CPU)."""
        blk = self._blocks["p"]
        if _host(D, p, dqdt) and pp is not None:
            S, N, d = p.shape
            m = masses.cpu().numpy()
            pn, un = p.numpy().reshape(S * N, d), dqdt.numpy().reshape(S * N, d)
            pu = pn[:, 0] * un[:, 0]
            for k in range(1, d):
                pu += pn[:, k] * un[:, k]
            gemv_add_(blk[1], D, torch.from_numpy((pu.reshape(S, N) / m).reshape(-1)))
            a = (np.sqrt(pp).reshape(S, N) / m).reshape(-1, 1)
            Dn = D.numpy()
            Dn *= a
            gram_add_(blk[0], D)
            u = un.reshape(-1)
            blk[2] += float(u @ u)
        else:
            gemv_add_(blk[1], D, ((p * dqdt).sum(-1) / masses).reshape(-1))
            D.mul_((torch.linalg.vector_norm(p, dim=-1) / masses).reshape(-1, 1))
            gram_add_(blk[0], D)
            u = dqdt.reshape(-1)
            blk[2] += u @ u
        blk[3] += dqdt.numel()

    def merge(self, other: NormalEquations) -> None:
        """Add the sums of ``other`` (the same network's rows of other snapshots) into these."""
        for name, blk in self._blocks.items():
            o = other._blocks[name]
            blk[0] += o[0]
            blk[1] += o[1]
            blk[2] += o[2]
            blk[3] += o[3]
        for key, (s, G, b) in other._folded.items():
            acc = self._folded.get(key)
            if acc is None:
                self._folded[key] = [s.copy(), G.copy(), b.copy()]
            else:
                acc[1] += G
                acc[2] += b

    @property
    def blocks(self) -> dict:
        """name -> [G, b, u.u, rows] with numpy G and b (on the CPU; the
        folded rows' sums scaled in: diag(s) G' diag(s), diag(s) b')."""
        out = {k: [v[0].cpu().numpy(), v[1].cpu().numpy(), float(v[2]), v[3]] for k, v in self._blocks.items()}
        for (name, _), (s, G, b) in self._folded.items():
            blk = out[name]
            blk[0] = blk[0] + G * s[:, None] * s[None, :]
            blk[1] = blk[1] + b * s
        return out


def _fast(group: Group, network: HGN) -> bool:
    """The fixed-graph fast path (invariant encoding, system.edges)."""
    return network.encoding == "invariant" and group.system.edges is not None


def _batches(group: Group, network: HGN, config: RFConfig):
    """Snapshot index ranges of at most batch_size snapshots within the memory budget."""
    S, N, d = group.shape
    E = 0 if group.system.edges is None else len(group.system.edges)
    if _fast(group, network):
        # geometry, slot vectors and kinetic rows per snapshot (the chunk buffers are fixed)
        per_snap = 8.0 * (E * (2 * d + 2) + N * d * 8 + N * (network.n_T + 4))
    else:
        # Jq + Jp + temporaries, in doubles, per snapshot
        per_snap = 8.0 * N * d * (network.L * 4 + 8)
        per_snap += 8.0 * E * (network.L * (2 if network.separable else 4 * d) + 16)
    cap = max(1, int(config.batch_memory_mb * 2 ** 20 / per_snap))
    step = max(1, min(config.batch_size, cap))
    return [(a, min(a + step, S)) for a in range(0, S, step)]


def assemble(network: HGN, groups: list[Group], config: RFConfig, progress=None, cancel=None,
             stage_from: float = 0.0, stage_to: float = 1.0, record: dict | None = None,
             fixed: dict | None = None) -> NormalEquations:
    """The normal equations of the groups' rows, streamed batch by batch
    from the groups' arrays. ``record`` (optional dict): receives ``k_max``
    (the largest kinetic energy of a training particle) and, for fixed
    graphs, ``r_max`` and ``r_min`` (the largest and smallest pair distance of the training snapshots).
    ``fixed`` (optional dict): a cache of the fixed-graph Jacobian structures keyed by the groups' system,
    for calls with the same network and system (adapt's folds build it once)."""
    ne = NormalEquations(network)
    plan = [(g, a, b) for g in groups for a, b in _batches(g, network, config)]
    shared = fixed is not None
    fixed = {} if fixed is None else fixed
    workers = assembly_threads(config, network, groups)
    if workers > 1:
        _assemble_threaded(ne, network, plan, workers, progress, cancel, stage_from, stage_to, record, fixed,
                           shared)
        return ne
    for n, (g, a, b) in enumerate(plan):
        check_cancel(cancel)
        q, p, dqdt, dpdt = g.batch(a, b)
        if _fast(g, network):
            key = id(g.system) if shared else id(g)
            fj = fixed.get(key)
            if fj is None:
                fj = fixed[key] = FixedJacobians(network, g.graph(0, 1, q[:1]))
            _assemble_fixed(ne, fj, q, p, dqdt, dpdt, record)
        else:
            _check_overlap(g.system, q)
            if record is not None:
                k = 0.5 * (p * p).sum(-1) / torch.as_tensor(g.system.masses, dtype=torch.float64, device=p.device)
                record["k_max"] = max(record.get("k_max", 0.0), float(k.max()) if k.numel() else 0.0)
            _, Jq, Jp = network.jacobians(g.graph(a, b, q), q, p)
            ne.add(Jq, Jp, dqdt, dpdt)
        report(progress, "assemble", stage_from + (stage_to - stage_from) * (n + 1) / len(plan))
    return ne


def assembly_threads(config: RFConfig, network: HGN, groups: list[Group]) -> int:
    """Threads over snapshots in :func:`assemble`: ``config.threads`` for a
    CPU fit whose groups all take the fixed-graph fast path (invariant
    encoding, ``system.edges``), else 1 (the general path's parallelism is
    torch's intra-op threads; see :func:`fit_threads`)."""
    n = int(config.threads)
    if n <= 1 or network.device.type != "cpu" or not groups or not all(_fast(g, network) for g in groups):
        return 1
    return n


#: the least snapshots of a part in the threaded assembly (:func:`_assemble_threaded`)
PART_SNAPSHOTS = 32


class _Crew:
    """Threads of the threaded assembly, kept between fits so that their
    :func:`core.learning.hgn.fixed.workspace` buffers (per thread) stay
    allocated: :meth:`run` runs ``fns[0]`` on the calling thread and
    ``fns[k]`` on crew thread k, and returns their results when all have
    ended (the first error re-raised). Two fits at once share the crew: a
    crew thread runs their functions one after the other."""

    def __init__(self):
        self._queues: list = []
        self._lock = threading.Lock()

    def _queue(self, k: int):
        with self._lock:
            while len(self._queues) < k:
                q = queue.SimpleQueue()
                threading.Thread(target=self._loop, args=(q,), daemon=True,
                                 name=f"rfhgn-assembly-{len(self._queues) + 1}").start()
                self._queues.append(q)
            return self._queues[k - 1]

    @staticmethod
    def _loop(q) -> None:
        while True:
            fn, out, done = q.get()
            try:
                out.append((True, fn()))
            except BaseException as exc:  # noqa: BLE001 (handed to the caller)
                out.append((False, exc))
            finally:
                done.release()

    def run(self, fns: list) -> list:
        jobs = []
        for k, fn in enumerate(fns[1:], start=1):
            out, done = [], threading.Semaphore(0)
            self._queue(k).put((fn, out, done))
            jobs.append((out, done))
        results, error = [], None
        try:
            results.append(fns[0]())
        except BaseException as exc:  # noqa: BLE001 (re-raised once the others have ended)
            error = exc
        for out, done in jobs:
            done.acquire()
            ok, value = out[0]
            if ok:
                results.append(value)
            elif error is None:
                error = value
        if error is not None:
            raise error
        return results


_CREW = _Crew()


def _assemble_threaded(ne: NormalEquations, network: HGN, plan, workers: int, progress, cancel,
                       stage_from: float, stage_to: float, record, fixed: dict, shared: bool) -> None:
    """:func:`assemble` on ``workers`` threads (fixed graphs on the CPU): each batch is cut into
    ``workers`` parts (of at least :data:`PART_SNAPSHOTS` snapshots) that the threads take in turn; each
    part's sums are its own, added into ``ne`` in the parts' order, so the result is the same whichever
    thread took which part (reproducible for a given thread count) and agrees with one thread's to
    round-off. NumPy, BLAS and torch release the interpreter lock in their loops; each thread has its own
    FixedJacobians (its work buffers are per thread) and one BLAS/torch thread. One part per thread: smaller
    parts cost CPU time in the Python between the loops, where the threads take turns with the
    interpreter lock (measured, 3x3x3 task, 2 threads: 25-29 ms of CPU time per fit with parts of 32-64
    snapshots, 21 ms with 128, against 19-20 ms on one thread)."""
    records = [{} for _ in range(workers)] if record is not None else [None] * workers
    lock = threading.Lock()
    quiet_csr()  # torch's once-per-process CSR warning silenced here, not by threads at once

    def fj_of(g, k, q):
        key = ((id(g.system) if shared else id(g)), k)
        fj = fixed.get(key)
        if fj is None:
            fj = FixedJacobians(network, g.graph(0, 1, q[:1]))
            with lock:
                fixed[key] = fj
        return fj

    for n, (g, a, b) in enumerate(plan):
        check_cancel(cancel)
        q, p, dqdt, dpdt = g.batch(a, b)
        S = b - a
        k = max(1, min(workers, S // PART_SNAPSHOTS))
        parts = [(S * i // k, S * (i + 1) // k) for i in range(k)]
        sums: list = [None] * len(parts)
        taken = iter(range(len(parts)))

        def work(k, g=g, q=q, p=p, dqdt=dqdt, dpdt=dpdt, parts=parts, sums=sums, taken=taken):
            while True:
                with lock:
                    i = next(taken, None)
                if i is None:
                    return
                check_cancel(cancel)
                c0, c1 = parts[i]
                part = NormalEquations(network)
                _assemble_fixed(part, fj_of(g, k, q), q[c0:c1], p[c0:c1], dqdt[c0:c1], dpdt[c0:c1], records[k])
                sums[i] = part

        _CREW.run([lambda k=k: work(k) for k in range(workers)])
        for part in sums:
            ne.merge(part)
        report(progress, "assemble", stage_from + (stage_to - stage_from) * (n + 1) / len(plan))
    if record is not None:
        for r in records:
            if "k_max" in r:
                record["k_max"] = max(record.get("k_max", 0.0), r["k_max"])
            if "r_max" in r:
                record["r_max"] = max(record.get("r_max", 0.0), r["r_max"])
                record["r_min"] = min(record.get("r_min", float("inf")), r["r_min"])


def _assemble_fixed(ne: NormalEquations, fj: FixedJacobians, q, p, dqdt, dpdt, record) -> None:
    """One batch of a fixed graph's rows into ``ne``."""
    pp = squares(p) if _host(p) else None
    D = fj.kinetic(p, pp)
    if record is not None and p.numel():
        pmax = float((pp.reshape(p.shape[:2]) / fj._masses2).max()) if pp is not None else \
            float((0.5 * (p * p).sum(-1) / fj.masses).max())
        record["k_max"] = max(record.get("k_max", 0.0), pmax)
    ne.add_kinetic(D, p, dqdt, fj.masses, pp)
    if fj.E == 0:
        u = dpdt.reshape(-1)
        blk = ne._blocks["q"]
        blk[2] += u @ u
        blk[3] += u.numel()
        return
    r, uh = fj.geometry(q)
    rmin, rmax = torch.aminmax(r)
    if float(rmin) <= 0:
        raise HGNError("two particles of a snapshot sit on top of each other (pair distance 0); "
                       "the pair features are undefined there")
    if record is not None:
        record["r_max"] = max(record.get("r_max", 0.0), float(rmax))
        record["r_min"] = min(record.get("r_min", float("inf")), float(rmin))
    S = q.shape[0]
    n = -(-S // (fj.chunk or S)) if S else 0  # chunks of at most fj.chunk snapshots, sizes within one
    for k in range(n):
        c0, c1 = S * k // n, S * (k + 1) // n
        Z, scale = fj.rows_folded(r, uh, c0, c1)
        ne.add_rows("q", Z, dpdt[c0:c1].reshape(-1), -1.0, scale)


# ======================================================================
def solve_block(G: np.ndarray, b: np.ndarray, lam: float, solver: str) -> tuple[np.ndarray, dict]:
    """min |Z x - u|^2 + lam |D x|^2 from G = Z^T Z, b = Z^T u, with D the
    column norms of Z (so lam is relative)."""
    n = len(b)
    if n == 0:
        return np.zeros(0), {"method": "empty"}
    dg = np.sqrt(np.clip(np.diag(G), 0.0, None))
    dg = np.where(dg > 0, dg, 1.0)
    A = G / dg[:, None] / dg[None, :]
    rhs = b / dg
    A[np.diag_indices(n)] += lam
    info: dict = {}
    x = None
    if solver in ("auto", "cholesky"):
        try:
            cf = sla.cho_factor(A, lower=False, check_finite=True)
            x = sla.cho_solve(cf, rhs)
            res = np.linalg.norm(A @ x - rhs) / max(np.linalg.norm(rhs), 1e-300)
            diagc = np.abs(np.diag(cf[0]))
            info.update(method="cholesky", residual=float(res),
                        condition_estimate=float((diagc.max() / diagc.min()) ** 2) if diagc.min() > 0 else float("inf"))
            if not np.all(np.isfinite(x)) or res > CHOLESKY_RESIDUAL:
                if solver == "cholesky":
                    raise HGNError(f"the Cholesky solve is inaccurate (relative residual {res:.2e}); "
                                   "raise the regularisation or use solver='auto'")
                x = None
        except np.linalg.LinAlgError:
            if solver == "cholesky":
                raise HGNError("the normal matrix is not positive definite; raise the regularisation "
                               "or use solver='auto'") from None
            x = None
    if x is None:
        w, V = np.linalg.eigh(A)
        wmax = max(float(w.max()), 1e-300)
        keep = w > n * np.finfo(float).eps * wmax
        x = V[:, keep] @ ((V[:, keep].T @ rhs) / w[keep])
        info.update(method="lstsq (eigh)", rank=int(keep.sum()),
                    condition_estimate=float(wmax / w[keep].min()) if keep.any() else float("inf"))
    return x / dg, info


def solve(ne: NormalEquations, config: RFConfig):
    """theta (L,) numpy and a dict of solve information."""
    net = ne.network
    theta = np.zeros(net.L)
    info = {}
    rows, sse = 0, 0.0
    for name, (G, b, uu, k) in ne.blocks.items():
        x, inf = solve_block(G, b, config.regularisation, config.solver)
        cols = {"p": net.p_cols, "q": net.q_cols, "all": slice(0, net.L)}[name]
        theta[cols] = x
        r = float(x @ G @ x - 2.0 * x @ b + uu)  # |Z x - u|^2 from the sums
        inf["train_mse"] = max(r, 0.0) / max(k, 1)
        info[name] = inf
        rows += k
        sse += max(r, 0.0)
    info["train_mse"] = sse / max(rows, 1)
    info["rows"] = rows
    return theta, info


# ======================================================================
def energy_constant(network: HGN, system: System, q, p, energy: float, device) -> float:
    """The constant c of a fitted energy H = theta.Phi + c from one state (q, p) (N, d) of known
    ``energy``: c = energy - theta.Phi(q, p) (module notes)."""
    kq = torch.as_tensor(np.asarray(q, dtype=np.float64)[None], device=device)
    kp = torch.as_tensor(np.asarray(p, dtype=np.float64)[None], device=device)
    with torch.no_grad():
        e = float(network(Graph.build(system, kq, device=device), kq, kp)[0])
    return float(energy - e)


def _fit_groups(groups: list[Group], known: tuple[System, np.ndarray, np.ndarray, float] | None,
                config: RFConfig, progress, cancel, t0: float, correction=None) -> FittedModel:
    device = groups[0].device
    rng = np.random.default_rng(config.seed)
    report(progress, "sample", 0.0)
    sets = choose_points([(g.system, g.arrays[0], g.arrays[1], g.index(0, g.n)) for g in groups], config, rng,
                         device)
    record: dict = {}

    def equations(network, stage_from, stage_to, first):
        return assemble(network, groups, config, progress, cancel, stage_from, stage_to,
                        record if first else None)

    network, theta, sinfo, ne = sample_and_solve(config, sets, rng, progress, cancel, equations)
    if correction is not None:
        check_cancel(cancel)
        theta, sinfo["correction"] = correction(network, theta, ne)
    return finish_fit(network, theta, sinfo, config, groups, sets, known, record, sum(g.n for g in groups),
                      device, progress, t0)


def sample_and_solve(config: RFConfig, sets, rng, progress, cancel, equations):
    """Sample the hidden layers on ``sets`` (choose_points), assemble and solve, with the adaptive
    sampler's extra rounds. ``equations(network, stage_from, stage_to, first)`` returns the normal
    equations of the training rows (:class:`NormalEquations`, or anything :func:`solve` reads;
    ``first``: the first round). Returns (network, theta, solve info, the last equations)."""
    network = sample_network(config, sets, rng, None, progress, cancel)
    rounds = config.adaptive_rounds if config.sampler == "adaptive" else 0
    span = 1.0 / (rounds + 1)
    ne = equations(network, 0.0, span, True)
    report(progress, "solve", 0.0)
    theta, sinfo = solve(ne, config)
    for r in range(rounds):
        check_cancel(cancel)
        targets = local_energies(network, theta, sets)
        network = sample_network(config, sets, rng, targets, None, cancel)
        ne = equations(network, span * (r + 1), span * (r + 2), False)
        theta, sinfo = solve(ne, config)
    return network, theta, sinfo, ne


def finish_fit(network: HGN, theta, sinfo: dict, config: RFConfig, groups: list[Group], sets,
               known: tuple[System, np.ndarray, np.ndarray, float] | None, record: dict, n_snapshots: int,
               device, progress, t0: float) -> FittedModel:
    """The FittedModel of a solved fit: theta set, the energy constant from ``known`` (system, q, p,
    energy; none or a non-finite energy: 0), the training range (``record`` from :func:`assemble`
    for fixed graphs, the sampled ``sets``' pairs for the others; one group per set) and ``info``."""
    network.set_theta(theta)
    report(progress, "solve", 0.9)
    constant, known_energy = 0.0, False
    n_ref = groups[0].system.n
    if known is not None and np.isfinite(known[3]):
        ksys, kq, kp, kH = known
        constant = energy_constant(network, ksys, kq, kp, kH, device)
        known_energy = True
        n_ref = ksys.n
    e_ref = None
    if known is not None and known[0].edges is not None:
        e_ref = len(known[0].edges)
    # the training range: fixed graphs from the assembly's distances (every training snapshot), others
    # from the sampled snapshots' pairs
    r_max, r_min = record.get("r_max", 0.0), record.get("r_min", float("inf"))
    for g, s in zip(groups, sets):
        if not _fast(g, network) and s.graph.P:
            r = s.graph.delta(s.q)[1]
            r_max, r_min = max(r_max, float(r.max())), min(r_min, float(r.min()))
    k_max = record.get("k_max", 0.0)
    model = FittedModel(config, network, None, constant, n_ref, groups[0].system, e_ref=e_ref)
    model.info.update(
        fit_time=time.perf_counter() - t0,
        n_snapshots=int(n_snapshots),
        n_particles=int(groups[0].system.n),
        n_features=int(network.L),
        n_rows=int(sinfo["rows"]),
        train_mse=float(sinfo["train_mse"]),
        solve={k: v for k, v in sinfo.items() if isinstance(v, dict)},
        energy_constant_known=known_energy,
        train_r_max=r_max,
        train_r_min=r_min if math.isfinite(r_min) else None,  # the roll-outs' range check warns below it too
        train_k_max=k_max,
        cores=available_cores(),
        device=str(device),
    )
    report(progress, "solve", 1.0)
    return model


def fit_threads(config: RFConfig, systems, device) -> int:
    """The torch intra-op and BLAS threads a fit runs with: ``config.threads``,
    except that a CPU fit of the invariant encoding on fixed graphs
    (``system.edges``: the lattice task) keeps them at one and shares its
    snapshots among ``config.threads`` threads of its own instead
    (:func:`assembly_threads`). Its work is chunks of ~33 snapshots whose
    products are too small to share out within one operation: intra-op threads
    wait for each other at every product on a busy machine (measured, 3x3x3
    task, 2 cores under load ~10, wall time of 6 fits each: 1 thread 77-87 ms
    best, 99-109 ms median; 2 intra-op threads 1,478-1,483 ms best,
    2,037-2,390 ms median; 2 torch threads alone 904 ms best, 2 BLAS threads
    alone 389 ms; one 2,673 x 48 syrk 244 against 232 us on 1 and 2
    threads), where threads over snapshots only meet once a batch. 0 leaves
    torch's and BLAS's settings alone, as before."""
    n = int(config.threads)
    if n > 1 and torch.device(device).type == "cpu" and config.encoding == "invariant" and systems \
            and all(s.edges is not None for s in systems):
        return 1
    return n


def fit(dataset: Dataset, config: RFConfig | None = None, progress=None, cancel=None) -> FittedModel:
    """Fit an RF-HGN to the training snapshots of ``dataset`` (with exact
    derivatives) on ``config.device``. ``info["fit_time"]`` is the wall time
    from the call (data in memory) to the usable model, in seconds."""
    t0 = time.perf_counter()
    config = RFConfig.checked(config)
    device = resolve_device(config.device)
    train, q, p, dqdt, dpdt = training_source(dataset)  # the dataset's arrays, not copied
    dataset.check_trainable(train)  # zero momenta and forces: nothing to learn (read in chunks, no copy)
    config.check_memory()  # normal equations beyond this machine's memory: refused before the work
    S = dataset.n_snapshots
    system = dataset.system
    energy = np.asarray(dataset.energy, dtype=np.float64).reshape(-1)
    known = None
    if energy.shape == (S,):
        known = (system, q[train[0]], p[train[0]], float(energy[train[0]]))
    threads = fit_threads(config, [system], device)
    with torch_threads(threads), blas_threads(threads):
        group = Group(system, q, p, dqdt, dpdt, train, device)
        model = _fit_groups([group], known, config, progress, cancel, t0)
    model.info["threads"] = threads
    model.info["assembly_threads"] = assembly_threads(config, model.network, [group])
    model.info["source"] = "derivatives"
    model.info["fit_time"] = time.perf_counter() - t0
    return model


# ======================================================================
def time_series_rows(traj: Trajectory, device=None) -> tuple[Group, float]:
    """The symplectic-Euler rows of one trajectory: states (q_{n+1}, p_n) and
    finite differences; returns the group and the spacing h."""
    if not isinstance(traj, Trajectory):
        raise HGNError(f"time series must be Trajectory objects, got {type(traj).__name__}")
    q, p, t = np.asarray(traj.q, float), np.asarray(traj.p, float), np.asarray(traj.t, float)
    if q.shape[0] < 2:
        raise HGNError("a time series needs at least two saved frames")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(p))):
        raise HGNError("the time series contains NaN or inf")
    dt = np.diff(t)
    h = float(dt[0]) if len(t) > 1 else float(traj.dt * traj.save_every)
    if not np.isfinite(h) or h <= 0 or np.max(np.abs(dt - h)) > 1e-9 * max(1.0, abs(h)):
        raise HGNError("the frames of a time series must be equally spaced in time")
    sysm = traj.system
    dq = minimum_image(q[1:] - q[:-1], sysm.box) / h
    dp = (p[1:] - p[:-1]) / h
    return _group(sysm, q[1:], p[:-1], dq, dp, device), h


def fit_time_series(trajectories: list[Trajectory], config: RFConfig | None = None, progress=None,
                    cancel=None, correct: bool = True) -> FittedModel:
    """Fit from plain time series (no derivatives), docs/method.md section 5.

    ``correct``: apply the first-order modified-Hamiltonian correction
    H ~ H_hat + (h/2) dH_hat/dq . dH_hat/dp, projected onto the features.
    The energy constant comes from the first frame's energy (kinetic +
    potential recorded in the trajectory) when it is finite.
    """
    t0 = time.perf_counter()
    config = RFConfig.checked(config)
    device = resolve_device(config.device)
    if isinstance(trajectories, Trajectory):
        trajectories = [trajectories]
    if not trajectories:
        raise HGNError("fit_time_series needs at least one trajectory")
    threads = fit_threads(config, [tr.system for tr in trajectories if isinstance(tr, Trajectory)], device)
    with torch_threads(threads), blas_threads(threads):
        groups, hs = [], []
        for tr in trajectories:
            g, h = time_series_rows(tr, device)
            groups.append(g)
            hs.append(h)
        if max(hs) - min(hs) > 1e-9 * max(hs):
            raise HGNError("all time series of one fit must have the same frame spacing")
        h = hs[0]
        tr0 = trajectories[0]
        H0 = float(np.asarray(tr0.kinetic)[0] + np.asarray(tr0.potential)[0]) if len(tr0.kinetic) else float("nan")
        known = (tr0.system, np.asarray(tr0.q[0], float), np.asarray(tr0.p[0], float), H0)
        correction = None
        if correct:
            def correction(network, theta, ne):
                return _project_correction(network, theta, ne, groups, h, config, cancel)
        model = _fit_groups(groups, known, config, progress, cancel, t0, correction)
    model.info.update(source="time series", spacing=h, corrected=bool(correct), threads=threads)
    model.info["fit_time"] = time.perf_counter() - t0
    return model


def correction_gradients(network: HGN, graph: Graph, q, p):
    """Gradients of C = dH/dq . dH/dp (H = theta . Phi with the network's
    theta) wrt q and p (S, N, d) tensors, exact (double backward through
    ``HGN.features``)."""
    qt = q.detach().clone().requires_grad_(True)
    pt = p.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        H = network(graph, qt, pt).sum()
        gq, gp = torch.autograd.grad(H, (qt, pt), create_graph=True)
        C = (gq * gp).sum()
        cq, cp = torch.autograd.grad(C, (qt, pt))
    return cq, cp


def _project_correction(network: HGN, theta, ne: NormalEquations, groups, h, config, cancel):
    """theta of the projection of H_hat + (h/2) H_q . H_p onto the features."""
    network.set_theta(theta)
    blocks = ne.blocks
    rhs = {name: torch.zeros(len(blk[1]), dtype=torch.float64, device=network.device)
           for name, blk in blocks.items()}
    for g in groups:
        for a, b in _batches(g, network, config):
            check_cancel(cancel)
            q, p = g.batch(a, b, (0, 1))
            graph = g.graph(a, b, q)
            _, Jq, Jp = network.jacobians(graph, q, p)
            cq, cp = correction_gradients(network, graph, q, p)
            cq = cq * (0.5 * h)
            cp = cp * (0.5 * h)
            # rows: Jp . delta = dC/dp (dq/dt rows), -Jq . delta = -dC/dq (dp/dt rows)
            Zp = Jp.reshape(-1, Jp.shape[-1])
            Zq = Jq.reshape(-1, Jq.shape[-1])
            if network.separable:
                rhs["p"] += Zp.T @ cp.reshape(-1)
                rhs["q"] += Zq.T @ cq.reshape(-1)
            else:
                rhs["all"] += Zp.T @ cp.reshape(-1) + Zq.T @ cq.reshape(-1)
    theta = np.array(theta, dtype=np.float64)
    info = {}
    for name, (G, _, _, _) in blocks.items():
        delta, inf = solve_block(G, rhs[name].cpu().numpy(), config.regularisation, config.solver)
        cols = {"p": network.p_cols, "q": network.q_cols, "all": slice(0, network.L)}[name]
        theta[cols] += delta
        info[name] = float(np.linalg.norm(delta) / max(np.linalg.norm(theta[cols]), 1e-300))
    return theta, {"relative_change": info}
