"""PNG figures of the suite (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_axes(ax):
    """Log-log axes with labels on the decades only."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def optimizers_png(doc, path: Path) -> Path:
    """Test MSE against time: every optimizer's curve, RF-HGN as points."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    cmap = plt.get_cmap("tab20")
    for n, (key, c) in enumerate(doc["curves"].items()):
        mon = [row for row in (c["monitor"] or []) if row[2] is not None]
        if not mon:
            continue
        t = [max(c["setup"] + row[1], 1e-3) for row in mon]
        bold = key in ("adam", "lbfgs")
        ax.plot(t, [row[2] for row in mon], color=("C0" if key == "adam" else "C3") if bold else cmap(n % 20),
                lw=2.4 if bold else 1.0, alpha=1.0 if bold else 0.8, label=c["label"], zorder=4 if bold else 2)
    for r in doc["rows"]:
        if r["kind"] == "rf" and r["test_mse"] is not None:
            ax.scatter([r["time"]], [r["test_mse"]], s=70, marker="*", zorder=5, label=r["method"])
    ax.axhline(doc["reference"]["test_mse"], color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("test derivative MSE")
    ax.set_title("3x3x3 lattice: RF-HGN against 15 gradient optimizers")
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def potentials_png(doc, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    labels = [r["label"] for r in doc["rows"]]
    width = 0.27
    for k, (key, name) in enumerate((("adam", "Adam (HGN)"), ("elm", "RF-HGN ELM"), ("swim", "RF-HGN SWIM"))):
        vals = [max(r[key]["test_mse"] or 1e-300, 1e-300) for r in doc["rows"]]
        ax.bar([i + (k - 1) * width for i in range(len(labels))], vals, width, label=name)
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylabel("test derivative MSE")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def zero_shot_png(doc, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    for s in doc["series"]:
        rows = [r for r in s["rows"] if "failed" not in r]
        if not rows:
            continue
        n = [r["particles"] for r in rows]
        axes[0].plot(n, [max(r["final_zerr"] or 1e-300, 1e-300) for r in rows], "o-", label=s["name"])
        axes[1].plot(n, [max(r["max_abs_drift"] or 1e-300, 1e-300) for r in rows], "o-", label=s["name"])
    for ax, title in zip(axes, ("final Zerr", "max |relative energy drift|")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("particles")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def scaling_png(doc, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), dpi=100)
    for ax, key, x, xl in ((axes[0], "snapshots", "snapshots", "training snapshots"),
                           (axes[1], "particles", "particles", "particles"),
                           (axes[2], "width", "features", "features (width)")):
        rows = doc[key]
        ax.plot([r[x] for r in rows], [r["time"] for r in rows], "o-")
        _log_axes(ax)
        ax.set_xlabel(xl)
        ax.set_ylabel("fit time (s)")
        ax.grid(True, which="both", alpha=0.3)
    rows = doc["rollout"]
    axes[3].plot([r["particles"] for r in rows], [r["seconds_per_step"] for r in rows], "o-", label="RF-HGN")
    axes[3].plot([r["particles"] for r in rows], [r["truth_seconds_per_step"] for r in rows], "s--",
                 label="ground truth")
    _log_axes(axes[3])
    axes[3].set_xlabel("particles")
    axes[3].set_ylabel("seconds per rollout step")
    axes[3].legend()
    axes[3].grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


WRITERS = {"optimizers": optimizers_png, "potentials": potentials_png, "zero_shot": zero_shot_png,
           "scaling": scaling_png}


def plot(name: str, doc: dict, out_dir: Path) -> Path | None:
    fn = WRITERS.get(name)
    return None if fn is None else fn(doc, out_dir / f"suite_{name}.png")
