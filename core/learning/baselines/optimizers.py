"""The 15 torch optimizers of the gradient-trained baselines (docs/method.md section 7).

Each entry of :data:`OPTIMIZERS` names a ``torch.optim`` class, its default
learning rate here, the keyword arguments it gets, and whether it is a
full-batch method (Rprop and LBFGS: their step rules assume the same
objective from step to step, so they see every training snapshot at each
step; the others take minibatches).

The fifteenth method, our choice, is **Muon** (``torch.optim.Muon``, in torch
since 2.9): momentum SGD whose update of every weight *matrix* is
orthogonalised by a Newton-Schulz iteration. It is the most recent optimizer
in ``torch.optim`` and was designed for exactly the dense hidden layers that
RF-HGN samples instead of training, so it is the natural "best modern
chance" for gradient training here. Muon accepts only 2-D parameters; the
vectors (biases, the output layer theta) are trained by AdamW beside it, the
usual way Muon is used (:class:`MuonWithAdamW`).

Default learning rates come from a sweep on the benchmark lattice task
(3x3x3 harmonic cubic lattice, the default network, 40 and 150 epochs per
setting; ``python -m benchmarks.suite.lr_sweep``), rounded to the safe side:
on that task Adam, NAdam, AdamW and Adafactor did best at 0.1, which is kept
for the benchmark only (``benchmarks/suite/optimizers.py`` TUNED_LR), not as a
default for other systems. Muon's 1e-3 and Adadelta's 1.0 were the best of
their sweeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import HGNError


@dataclass(frozen=True)
class OptimizerSpec:
    key: str
    label: str
    cls_name: str  # attribute of torch.optim (or "MuonWithAdamW")
    lr: float  # default learning rate
    kwargs: dict = field(default_factory=dict)
    full_batch: bool = False
    note: str = ""


#: every optimizer, in table order
OPTIMIZERS: dict[str, OptimizerSpec] = {s.key: s for s in [
    OptimizerSpec("adam", "Adam", "Adam", 1e-2),
    OptimizerSpec("adamw", "AdamW", "AdamW", 1e-2, {"weight_decay": 1e-4}),
    OptimizerSpec("adamax", "Adamax", "Adamax", 1e-2),
    OptimizerSpec("nadam", "NAdam", "NAdam", 1e-2),
    OptimizerSpec("radam", "RAdam", "RAdam", 1e-2),
    OptimizerSpec("adagrad", "Adagrad", "Adagrad", 3e-2),
    OptimizerSpec("adadelta", "Adadelta", "Adadelta", 1.0),
    OptimizerSpec("adafactor", "Adafactor", "Adafactor", 1e-2),
    OptimizerSpec("rmsprop", "RMSprop", "RMSprop", 1e-2),
    OptimizerSpec("rprop", "Rprop", "Rprop", 1e-2, full_batch=True,
                  note="full batch: the sign-based step sizes assume one fixed objective"),
    OptimizerSpec("sgd", "SGD", "SGD", 1e-2),
    OptimizerSpec("sgd_momentum", "SGD with momentum", "SGD", 1e-2, {"momentum": 0.9}),
    OptimizerSpec("asgd", "ASGD", "ASGD", 1e-2),
    OptimizerSpec("lbfgs", "LBFGS", "LBFGS", 1.0,
                  {"max_iter": 10, "history_size": 50, "line_search_fn": "strong_wolfe",
                   "tolerance_grad": 0.0, "tolerance_change": 0.0},
                  full_batch=True, note="full batch, strong Wolfe line search, closure re-evaluates the loss"),
    OptimizerSpec("muon", "Muon (+AdamW for vectors)", "MuonWithAdamW", 1e-3,
                  note="our choice: Muon on weight matrices, AdamW on biases and the output layer"),
]}


def optimizer_keys() -> list[str]:
    return list(OPTIMIZERS)


def get_spec(key: str) -> OptimizerSpec:
    k = str(key).strip().lower().replace(" ", "_").replace("-", "_")
    aliases = {"sgdm": "sgd_momentum", "sgd_with_momentum": "sgd_momentum", "l_bfgs": "lbfgs"}
    k = aliases.get(k, k)
    if k not in OPTIMIZERS:
        raise HGNError(f"unknown optimizer {key!r}; known optimizers: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[k]


class MuonWithAdamW:
    """Muon for the 2-D parameters, AdamW for the rest, stepped together.

    Has the parts of the ``torch.optim.Optimizer`` interface the training
    loop uses (``step``, ``zero_grad``, ``param_groups``, ``state_dict``).
    """

    def __init__(self, named_params, lr: float):
        import torch

        mats = [p for _, p in named_params if p.ndim == 2]
        vecs = [p for _, p in named_params if p.ndim != 2]
        # Muon's own default weight decay (0.1) would pull the few, small
        # matrices here towards zero; the baselines use none.
        self.muon = torch.optim.Muon(mats, lr=lr, weight_decay=0.0, adjust_lr_fn="match_rms_adamw") if mats else None
        self.adamw = torch.optim.AdamW(vecs, lr=lr, weight_decay=0.0) if vecs else None
        self._opts = [o for o in (self.muon, self.adamw) if o is not None]

    @property
    def param_groups(self):
        return [g for o in self._opts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True):
        for o in self._opts:
            o.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            import torch

            with torch.enable_grad():
                loss = closure()
        for o in self._opts:
            o.step()
        return loss

    def state_dict(self):
        return {"muon": self.muon.state_dict() if self.muon else None,
                "adamw": self.adamw.state_dict() if self.adamw else None}


def make_optimizer(key: str, named_params, lr: float | None = None, **overrides):
    """A ready optimizer for ``named_params`` (list of (name, tensor)).

    ``lr`` None takes the default of the spec; ``overrides`` replace its
    keyword arguments (e.g. ``momentum=0.5``)."""
    import torch

    spec = get_spec(key)
    lr = spec.lr if lr is None else float(lr)
    if not (lr > 0):
        raise HGNError(f"learning rate must be > 0, got {lr}")
    named_params = list(named_params)
    if spec.cls_name == "MuonWithAdamW":
        return MuonWithAdamW(named_params, lr)
    kw = dict(spec.kwargs)
    kw.update(overrides)
    cls = getattr(torch.optim, spec.cls_name)
    return cls([p for _, p in named_params], lr=lr, **kw)
