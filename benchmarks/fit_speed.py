"""Fit speed of RF-HGN on the paper's task, against the floor set by its own
normal-equation products (issue 10).

The task (benchmarks/bench_rfhgn.py section 1): a 3x3x3 simple cubic lattice
with harmonic springs, 500 training and 200 test snapshots (displacements and
momenta of sd 0.1, seeds 0 and 1), RF-HGN with the SWIM invariant defaults.

:func:`measure` fits ``repeat`` times (after one untimed warm-up fit) and
times, in the same run, alternating with the fits (so that both see the same
load of a shared machine) and with the same threads, the products that any
least-squares fit of these features must do: Z^T Z and Z^T u for the same Z
shapes (the kinetic block Z_p of n_T columns and the potential block Z_q of
n_V columns, rows = snapshots x particles x dimensions, in the fit's batches
of 256 snapshots), float64, in torch (``products_s``; numpy's time for the
same products, OpenBLAS's syrk with ``threads`` BLAS threads, is reported beside
it, ``products_numpy_s``). ``ratio`` is the fit against the faster of the two
(the fit itself takes NumPy's syrk on the CPU); ``ratio_torch_products``
against torch's; ``ratio_median`` the median fit against the median of each
repeat's faster products (the typical ratio). The target is fit <= 3 x
products with the test derivative MSE unchanged (~2.75e-11).

It uses only what the code before the torch core had too (``fit(dataset,
RFConfig(...))``, ``core.learning.metrics.derivative_mse``, the builders and
``random_snapshots``; ``threads`` is passed as ``blas_threads`` where
RFConfig has no ``threads``), so benchmarks/bench_torch_core.py can run the
same function at the old commit for the before/after figures.

:func:`measure_gpu` compares the fit on the CPU and on CUDA for many
snapshots (target: CUDA >= 10x faster at 100,000); it returns None without a
GPU.

    .venv/bin/python benchmarks/fit_speed.py [--repeat 5] [--threads 1] [--device cpu] [--gpu]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.learning.metrics import derivative_mse  # noqa: E402
from core.learning.rfhgn import RFConfig, fit  # noqa: E402
from core.physics import builders  # noqa: E402
from core.physics.datagen import random_snapshots  # noqa: E402
from core.physics.trajectory import Dataset  # noqa: E402

N_TRAIN, N_TEST, SD = 500, 200, 0.1
BATCH = 256
TARGET_RATIO = 3.0
TARGET_GPU_SPEEDUP = 10.0


def dataset(n_train: int = N_TRAIN, n_test: int = N_TEST) -> Dataset:
    """The 3x3x3 harmonic lattice task: train seed 0, test seed 1, joined."""
    system = builders.cubic_lattice(3, 3, 3)
    a = random_snapshots(system, n_train, SD, SD, seed=0)
    b = random_snapshots(system, n_test, SD, SD, seed=1)

    def cat(x, y):
        return np.concatenate([x, y])

    return Dataset(system, cat(a.q, b.q), cat(a.p, b.p), cat(a.dqdt, b.dqdt), cat(a.dpdt, b.dpdt),
                   cat(a.energy, b.energy), np.arange(n_train), np.arange(n_train, n_train + n_test))


def config(device: str = "cpu", threads: int = 1, **changes) -> RFConfig:
    """The default RFConfig on ``device`` with ``threads`` (blas_threads in
    the code before the torch core)."""
    names = {f.name for f in dataclasses.fields(RFConfig)}
    kw = dict(changes)
    if "threads" in names:
        kw["threads"] = threads
    elif "blas_threads" in names:
        kw["blas_threads"] = threads
    if "device" in names:
        kw["device"] = device
    elif device != "cpu":
        raise ValueError("this version of RFConfig has no device setting")
    return RFConfig(**kw)


def _blas_threads(n: int):
    """NumPy's OpenBLAS limited to ``n`` threads (the fit does the same), with
    whichever helper this version of the code has."""
    try:
        from core.learning.hgn.device import blas_threads
    except ImportError:
        try:
            from core.learning.rfhgn.blas import blas_threads
        except ImportError:
            return contextlib.nullcontext()
    return blas_threads(n)


def _product_passes(rows_per_batch: list[int], n_T: int, n_V: int, device: str = "cpu"):
    """Two functions, each timing one pass of Z^T Z and Z^T u for both blocks
    over the batches (seconds): torch's (``addmm_``/``addmv_``) and numpy's
    (``Z.T @ Z`` is OpenBLAS's syrk). Each pass is run twice and the second
    timed, so the matrices are as warm in cache as a fit's own."""
    import torch

    rng = np.random.default_rng(0)
    Zs = [(rng.standard_normal((r, n_T)), rng.standard_normal((r, n_V)), rng.standard_normal(r),
           rng.standard_normal(r)) for r in rows_per_batch]
    dev = torch.device(device)
    tz = [tuple(torch.as_tensor(x, device=dev) for x in z) for z in Zs]

    def torch_pass():
        t = np.inf
        for _ in range(2):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            Gp = torch.zeros((n_T, n_T), dtype=torch.float64, device=dev)
            Gq = torch.zeros((n_V, n_V), dtype=torch.float64, device=dev)
            bp = torch.zeros(n_T, dtype=torch.float64, device=dev)
            bq = torch.zeros(n_V, dtype=torch.float64, device=dev)
            for Zp, Zq, up, uq in tz:
                Gp.addmm_(Zp.T, Zp)
                bp.addmv_(Zp.T, up)
                Gq.addmm_(Zq.T, Zq)
                bq.addmv_(Zq.T, uq)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter() - t0
        return t

    def numpy_pass():
        t = np.inf
        for _ in range(2):
            t0 = time.perf_counter()
            Gp, Gq, bp, bq = np.zeros((n_T, n_T)), np.zeros((n_V, n_V)), np.zeros(n_T), np.zeros(n_V)
            for Zp, Zq, up, uq in Zs:
                Gp += Zp.T @ Zp
                bp += Zp.T @ up
                Gq += Zq.T @ Zq
                bq += Zq.T @ uq
            t = time.perf_counter() - t0
        return t

    return torch_pass, numpy_pass


def measure(repeat: int = 5, device: str = "cpu", threads: int = 1) -> dict:
    """Fit time (best and median of ``repeat`` after a warm-up), the products
    alone, their ratio, the test MSE, L and the rows (see the module notes).
    Fits and products alternate (a fit, then the products, ``repeat``
    times; each timed run directly after an untimed one of the same kind), so
    that both see the same load of a shared machine."""
    import torch

    ds = dataset()
    cfg = config(device, threads)
    model = fit(ds, cfg)  # warm-up: imports, first allocations
    net = model.network
    n_T = len(range(*net.p_cols.indices(net.L)))
    n_V = len(range(*net.q_cols.indices(net.L)))
    N, d = ds.system.n, ds.system.dim
    rows_per_batch = [min(BATCH, N_TRAIN - a) * N * d for a in range(0, N_TRAIN, BATCH)]
    torch_pass, numpy_pass = _product_passes(rows_per_batch, n_T, n_V, device)
    times, prod_t, prod_n = [], [], []
    old = torch.get_num_threads()
    try:
        for _ in range(repeat):
            fit(ds, cfg)
            t0 = time.perf_counter()
            model = fit(ds, cfg)
            times.append(time.perf_counter() - t0)
            if threads > 0:
                torch.set_num_threads(threads)
            prod_t.append(torch_pass())
            torch.set_num_threads(old)
            with _blas_threads(threads):
                prod_n.append(numpy_pass())
    finally:
        torch.set_num_threads(old)
    mse = derivative_mse(model, ds)
    best = min(times)
    # the typical ratio: median fit against the median of each repeat's faster products
    median_ratio = statistics.median(times) / statistics.median([min(a, b) for a, b in zip(prod_t, prod_n)])
    prod_t, prod_n = min(prod_t), min(prod_n)
    return {
        "task": "3x3x3 harmonic lattice, 500 train / 200 test snapshots, SWIM invariant defaults",
        "device": device, "threads": threads, "repeat": repeat,
        "fit_best_s": best, "fit_median_s": statistics.median(times), "fit_times_s": times,
        "products_s": prod_t, "products_numpy_s": prod_n,
        # against the faster of the two (the fit takes NumPy's syrk on the CPU): the honest floor
        "ratio": best / min(prod_t, prod_n), "ratio_torch_products": best / prod_t,
        "ratio_median": median_ratio,
        "target_ratio": TARGET_RATIO, "test_mse": mse, "L": int(net.L), "n_T": n_T, "n_V": n_V,
        "rows": int(2 * N_TRAIN * N * d),
        "product_mflop": 2.0 * N_TRAIN * N * d * (n_T * n_T + n_V * n_V + n_T + n_V) / 1e6,
    }


def measure_gpu(n_snapshots: int = 100_000, threads: int = 1, repeat: int = 2, device: str = "cuda") -> dict | None:
    """The fit on ``n_snapshots`` of the 3x3x3 lattice on the CPU and on CUDA
    (best of ``repeat`` each after a warm-up); None without a GPU. ``device``
    "cpu" runs the same comparison CPU against CPU (a dry run for tests: the
    keys stay "cuda_*" for the device measured against the CPU)."""
    import torch

    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        return None
    ds = dataset(n_snapshots, N_TEST)
    out = {"n_snapshots": n_snapshots, "threads": threads,
           "gpu": torch.cuda.get_device_name(0) if torch.device(device).type == "cuda" else f"({device})"}
    for label, dev in (("cuda", device), ("cpu", "cpu")):
        cfg = config(dev, threads, batch_size=4096 if label == "cuda" else BATCH,
                     batch_memory_mb=4096.0 if label == "cuda" else 256.0)
        if label == "cuda":
            fit(ds.subset(np.arange(min(n_snapshots, 1000))), cfg)  # warm-up: CUDA context, kernels
        times = []
        for _ in range(repeat if label == "cuda" else 1):
            t0 = time.perf_counter()
            model = fit(ds, cfg)
            times.append(time.perf_counter() - t0)
        out[f"{label}_fit_s"] = min(times)
        out[f"{label}_test_mse"] = derivative_mse(model, ds)
    out["speedup"] = out["cpu_fit_s"] / out["cuda_fit_s"]
    out["target_speedup"] = TARGET_GPU_SPEEDUP
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gpu", action="store_true", help="also the CPU-vs-CUDA fit on 100,000 snapshots")
    ap.add_argument("--snapshots", type=int, default=100_000, help="snapshots of the GPU comparison")
    args = ap.parse_args(argv)
    r = measure(args.repeat, args.device, args.threads)
    print(f"fit {r['fit_best_s'] * 1e3:.1f} ms best, {r['fit_median_s'] * 1e3:.1f} ms median ({args.device}, "
          f"{args.threads} thread(s)); products alone {r['products_s'] * 1e3:.2f} ms torch, "
          f"{r['products_numpy_s'] * 1e3:.2f} ms numpy ({r['product_mflop']:.0f} MFLOP); "
          f"ratio {r['ratio']:.2f} to the faster products (target <= {TARGET_RATIO}; "
          f"{r['ratio_torch_products']:.2f} to torch's; medians {r['ratio_median']:.2f}); "
          f"test MSE {r['test_mse']:.3e}; L = {r['L']}, "
          f"rows = {r['rows']}")
    out = {"cpu": r}
    if args.gpu:
        g = measure_gpu(args.snapshots, args.threads)
        if g is None:
            print("GPU comparison skipped: torch reports no CUDA device")
        else:
            print(f"{g['n_snapshots']} snapshots: CPU {g['cpu_fit_s']:.2f} s, CUDA {g['cuda_fit_s']:.3f} s "
                  f"({g['gpu']}): {g['speedup']:.1f}x (target >= {TARGET_GPU_SPEEDUP:.0f}x); test MSE "
                  f"{g['cpu_test_mse']:.3e} / {g['cuda_test_mse']:.3e}")
        out["gpu"] = g
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
