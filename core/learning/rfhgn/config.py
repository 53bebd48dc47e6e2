"""Every tunable of an RF-HGN fit, with one default each.

:class:`RFConfig` is a plain dataclass: the studio edits it, the command line
fills it from flags, a saved model stores it (``to_dict``/``from_dict``), and
the fit reads it. Unknown keys and bad values raise :class:`HGNError` with a
message naming the setting.

The network the widths refer to (docs/method.md section 2; details in
``core/learning/hgn/network.py``):

* ``encoding="invariant"`` (default): node encoder on the kinetic term
  k_i = |p_i|^2 / (2 m_i) (``node_width`` tanh features, zero at rest, plus
  k_i itself when ``linear_kinetic``); optional static encoder on the mass
  (``static_width``, 0 = masses do not enter messages); edge encoder on the
  pair distance r_ij (``edge_width``); message phi_M(g_i + g_j, e_ij)
  (``message_width``). H = theta_T . sum_i h_i + theta_V . sum_edges
  [e_ij, m_ij] + c (e_ij pooled with ``pool_edges``): separable.
* ``encoding="frame"`` (the paper's): node encoder on [q_bar_i, p_bar_i, m_i]
  (``node_width``), edge encoder on [r_ij, (q_bar_i - q_bar_j)^2 per axis]
  (``edge_width``), message phi_M(h_i + h_j, e_ij) (``message_width``);
  H = theta . [sum_i h_i, sum_edges [e_ij, m_ij]] + c: not separable. It
  needs a wider node layer than the default (measured on the 3x3x3 lattice,
  SWIM, test derivative MSE: node_width 16 gives 2.2e-3, 64 gives 0.9-1.3e-4
  over seeds 0-2, 128 gives 1.6e-5; with the paper's frame_rule "nearest"
  4.2e-3 and 4.6e-4 at 16 and 64). ``frame_rule`` picks the particles that
  define the frame (default "farthest" from the centre). The frame encoding's
  recommended settings (:data:`FRAME_SETTINGS`, ``RFConfig.recommended("frame")``):
  node_width 96 and swim_scale 0.02 (near-linear node neurons, whose span is
  close to a low-degree polynomial in the frame coordinates) give 5e-9 to
  4e-8 over seeds 0-2 in ~0.33 s, and implicit rollouts converging in ~5
  evaluations a step (see core/learning/hgn/frame.py). The plain defaults stay
  those of the invariant encoding.

Defaults and why (measured on the 3x3x3 harmonic lattice, 500 training
snapshots, single-threaded BLAS; see docs/method.md section 10): widths 16/32/16 keep the
fit at ~70 ms with test MSE ~5e-11; ``swim_scale`` 0.2 instead of the paper's
ln(3)/2: the paper's constant makes neurons steep (a close pair of points
gives a near step) and the fitted derivatives 100-1000x worse (max over 8
seeds 8.9e-7 against 3.5e-10), at the price of a worse-conditioned Z (the
paper's constant is still one setting away).
"""
from __future__ import annotations

from dataclasses import dataclass

from core import validate
from core.errors import HGNError
from core.settings import SettingsMixin, setting
from core.learning.hgn import FRAME_RULES
from core.learning.hgn.device import DEVICES

ENCODINGS = ("invariant", "frame")
#: settings that :meth:`RFConfig.recommended` puts over the defaults, per
#: encoding (measured on the 3x3x3 harmonic benchmark, see the module notes;
#: node_width 64 / swim_scale 0.2 gives ~1e-4, 80 / 0.02 ~3e-7, 128 / 0.02 ~5e-9)
RECOMMENDED = {"invariant": {}, "frame": {"node_width": 96, "swim_scale": 0.02}}
FRAME_SETTINGS = RECOMMENDED["frame"]
SAMPLERS = ("swim", "elm", "adaptive")
ACTIVATIONS = ("tanh",)
SOLVERS = ("auto", "cholesky", "lstsq")
#: largest width of any layer: the fit's normal matrix is L x L float64 with L ~ the sum of the widths, so at
#: this width it alone is 8 TB (no machine); below it :meth:`RFConfig.check_memory` compares with this machine
MAX_WIDTH = 1_000_000
#: L x L float64 matrices the fit holds at once (the normal matrix, its scaled copy and the factor)
_NORMAL_COPIES = 3


@dataclass
class RFConfig(SettingsMixin):
    """Settings of a random-feature Hamiltonian graph network and its fit
    (each with its help text and, where fixed, its choices in the field's
    metadata: :meth:`help_texts`, :meth:`choice_lists`)."""

    label = "RF-HGN setting"  # names one setting in error messages (SettingsMixin)

    encoding: str = setting(
        "invariant", """invariant: pair distances and kinetic terms (separable, smooth, any system
        size); frame: the paper's centre-of-mass frame (not separable)""", ENCODINGS)
    sampler: str = setting(
        "swim", """How hidden weights are drawn. swim: from pairs of data points; elm: random Gaussian
        weights on inputs scaled to unit range; adaptive: SWIM, fit, resample pairs where the fitted
        function changes most, refit""", SAMPLERS)
    activation: str = setting("tanh", "Hidden activation (tanh is the one the SWIM constant is made for)",
                              ACTIVATIONS)
    frame_rule: str = setting(
        "farthest", """Frame encoding only: which particles define the frame. farthest from the centre
        (a stable frame) or nearest (the paper's rule, whose frame turns wildly when a particle sits near
        the centre); see core/learning/hgn/frame.py""", FRAME_RULES)
    node_width: int = setting(16, "Width of the node encoder (kinetic features for invariant, node features "
                                  "for frame)")
    static_width: int = setting(0, "Width of the static (mass) encoder, whose output enters the messages; "
                                   "0 = masses do not enter messages (invariant only)")
    edge_width: int = setting(32, "Width of the edge (pair distance) encoder")
    message_width: int = setting(16, "Width of the message layer")
    pool_edges: bool = setting(True, "Pool the edge encodings too: the features get the sum of e_ij over the "
                                     "edges beside the sum of the messages")
    linear_kinetic: bool = setting(True, "Add the raw kinetic energy k_i as one more (linear) feature "
                                         "(invariant only)")
    regularisation: float = setting(
        1e-12, """Ridge parameter lambda of the linear solve, relative: the columns of Z are scaled to unit
        norm before lambda I is added to Z^T Z""")
    batch_size: int = setting(256, "Snapshots per assembly batch (also capped by batch_memory_mb)")
    batch_memory_mb: float = setting(256.0, "Memory budget of one assembly batch in MiB")
    device: str = setting(
        "cpu", """Where the fit runs: cpu, or cuda (an NVIDIA GPU; an error when this machine has none). The
        fit is float64 on either; the fitted model loads and runs on either""", DEVICES)
    threads: int = setting(
        1, """torch intra-op threads during the fit (0 = leave torch's setting). One is fastest for these
        small products on a shared machine: 3x3x3 lattice, 500 snapshots, 2 cores under load (benchmarks/
        fit_speed.py, two runs each): 74 and 121 ms best with 1 thread, 248 and 356 ms with 2 (medians
        87/136 against 2089/396 ms). A CPU fit of the invariant encoding on fixed graphs (lattices) keeps
        torch and BLAS at one thread and shares its snapshots among this many threads of its own instead
        (rfhgn.fitting.fit_threads and assembly_threads, measured there); the model's info["threads"] and
        info["assembly_threads"] say which""")
    seed: int = setting(0, "Random seed of the sampled layers (every random choice of the fit)")
    swim_scale: float = setting(
        0.2, """SWIM constant s: a neuron's pre-activation is -s at one point of its pair and +s at the other.
        The paper's ln(3)/2 gives steep, localised neurons; 0.2 (broader neurons) fits the derivatives of
        smooth pair potentials 100-1000x better (measured, docs/method.md section 10.2)""")
    standardise: bool = setting(True, "SWIM/adaptive: sample multi-input layers in per-coordinate standardised "
                                      "inputs (mean 0, sd 1), folded back into W and b")
    elm_bias: float = setting(1.0, "ELM bias range b0 (b ~ U(-b0, b0)) after scaling inputs to [-1, 1]")
    sample_points: int = setting(20000, "At most this many data points per layer are used to sample it")
    adaptive_rounds: int = setting(1, "Resample-and-refit rounds of the adaptive sampler")
    solver: str = setting("auto", "auto: Cholesky, least squares when ill-conditioned; cholesky; lstsq",
                          SOLVERS)
    cutoff_shift: bool = setting(
        True, """Cutoff systems: use m(r) - m(r_cut) per pair, so the energy is continuous when pairs enter
        or leave the cutoff (as the truncated-shifted truth)""")
    fast_tables: bool = setting(
        True, """Evaluate separable invariant models through 1-D tables of the per-pair function, checked
        against the exact network when built (faster roll-outs)""")

    # ------------------------------------------------------------------
    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`HGNError` naming the first bad setting (checks of core.validate)."""
        def label(name):
            return f"RF-HGN setting {name}"

        def choice(name, options):
            v = getattr(self, name)
            if not isinstance(v, str) or v not in options:
                raise HGNError(f"RF-HGN setting {name}={v!r} is not one of {', '.join(options)}")

        def integer(name, lo, hi=None):
            setattr(self, name, validate.whole(label(name), getattr(self, name), lo, hi))

        def number(name, lo, strict):
            setattr(self, name, validate.number(label(name), getattr(self, name), lo, above=strict))

        def flag(name):
            validate.flag(label(name), getattr(self, name))

        choice("encoding", ENCODINGS)
        choice("sampler", SAMPLERS)
        choice("activation", ACTIVATIONS)
        choice("solver", SOLVERS)
        choice("frame_rule", FRAME_RULES)
        integer("node_width", 1, MAX_WIDTH)
        integer("static_width", 0, MAX_WIDTH)
        integer("edge_width", 1, MAX_WIDTH)
        integer("message_width", 1, MAX_WIDTH)
        integer("batch_size", 1)
        integer("sample_points", 2)
        integer("adaptive_rounds", 1, 1000)
        integer("seed", 0)
        integer("threads", 0, validate.MAX_THREADS)
        if self.device not in DEVICES:
            raise HGNError(f"RF-HGN setting device={self.device!r} is not one of {', '.join(DEVICES)}")
        number("regularisation", 0.0, strict=False)
        number("batch_memory_mb", 0.0, strict=True)
        number("swim_scale", 0.0, strict=True)
        number("elm_bias", 0.0, strict=False)
        flag("linear_kinetic")
        flag("pool_edges")
        flag("standardise")
        flag("cutoff_shift")
        flag("fast_tables")
        if self.encoding == "frame" and self.static_width:
            raise HGNError("RF-HGN setting static_width applies to the invariant encoding only "
                           "(the frame encoding puts the mass into the node input); set it to 0")

    # ------------------------------------------------------------------
    def n_features(self) -> int:
        """An upper estimate of the number of output features L (the size of
        the fit's normal matrix): every width, plus the linear kinetic term."""
        return (self.node_width + self.static_width + self.edge_width + self.message_width
                + int(self.linear_kinetic) + 1)

    def fit_memory_bytes(self) -> float:
        """Estimated bytes a fit holds besides its data: the L x L normal
        matrices and one assembly batch (``batch_memory_mb``)."""
        L = float(self.n_features())
        return _NORMAL_COPIES * L * L * 8 + self.batch_memory_mb * 2 ** 20

    def check_memory(self) -> None:
        """HGNError before a fit whose normal equations cannot fit in this
        machine's memory (e.g. edge_width 1e8: the normal matrix alone would
        be 8e16 bytes)."""
        validate.check_memory(f"an RF-HGN fit with {self.n_features()} features (widths node {self.node_width}, "
                              f"edge {self.edge_width}, message {self.message_width})", self.fit_memory_bytes(),
                              "use smaller widths")

    @classmethod
    def from_dict(cls, d: dict) -> "RFConfig":
        """As :meth:`SettingsMixin.from_dict`; ``blas_threads`` (settings and
        model files written before the torch core, where it limited numpy's
        BLAS) is read as ``threads``."""
        if isinstance(d, dict) and "blas_threads" in d:
            d = dict(d)
            old = d.pop("blas_threads")
            d.setdefault("threads", old)
        return super().from_dict(d)

    @classmethod
    def recommended(cls, encoding: str = "invariant", **changes) -> "RFConfig":
        """The defaults with the measured best settings of ``encoding``
        (:data:`RECOMMENDED`) over them, then ``changes``."""
        if encoding not in ENCODINGS:
            raise HGNError(f"RF-HGN setting encoding={encoding!r} is not one of {', '.join(ENCODINGS)}")
        return cls.from_dict({"encoding": encoding, **RECOMMENDED[encoding], **changes})

