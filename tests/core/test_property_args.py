"""Property-based tests (hypothesis) of bad arguments (issue 11, "Tests"):
for every command of the command line and for the public Python API
(builders, simulate, initial states, data generation, roll-out, configs).

Command line: each case is a small valid command with one or two options
replaced by a value drawn from bad values (negative, zero, NaN, inf, huge,
text, paths that cannot be written or read). ``core.cli.main(argv)`` runs in
this process (a subprocess per case would take ~1 s each); a case passes
when the command either finishes with exit code 0 (the value happened to be
valid) or exits non-zero with exactly one line ``error: ...`` on stderr
(``warning: ...`` lines aside) and no traceback; no exception may escape,
each case must end within ``CASE_SECONDS`` and the process's peak memory
must stay under ``PEAK_BYTES``.

Python API: each case calls a public function with one argument replaced by
a bad value; it must return or raise :class:`~core.errors.HGNError`, nothing
else, within the same bounds.

Every test collects all failing cases (instead of stopping at the first) and
asserts at the end that there are none, so a run on old code counts them:
the counts are printed (``pytest -s``). Deterministic: ``derandomize=True``.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import resource
import signal
import sys
import tempfile
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import HGNError

#: wall-clock bound of one case (s); the slowest valid case here takes ~0.5 s
CASE_SECONDS = 10.0
#: bound of the test process's peak resident memory (bytes)
PEAK_BYTES = 3 * 2 ** 30

SETTINGS = dict(derandomize=True, deadline=None, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


# ---------------------------------------------------------------------------
# bad values
# ---------------------------------------------------------------------------
BAD_NUMBERS = ["-1", "0", "-0.5", "nan", "inf", "-inf", "1e300", "-1e300", "1e15", "1000000000000000",
               "100000000000000000000000000000", "abc", "", " ", "1,5", "0x10", "1e", "--", "None", "[1]"]
BAD_PATHS = ["/sys/hgn-test/x.npz", "/sys/x.npz", "/nonexistent-folder/x.npz", "/", ".", "/dev/null/x.npz",
             "", "x" * 300 + ".npz"]


def bad_numbers():
    """Numbers no setting accepts for real work: negative, tiny, NaN/inf, or so
    large (>= 1e13) that every size and count is refused (memory, time); not
    mid-range values, which are valid sizes that would just take long."""
    return st.one_of(st.integers(-10 ** 30, -1), st.integers(10 ** 13, 10 ** 30),
                     st.floats(max_value=-1e-300), st.floats(min_value=1e13),
                     st.floats(min_value=-1e-3, max_value=1e-3), st.sampled_from([math.nan, math.inf, -math.inf]))


def bad_values():
    return st.one_of(st.sampled_from(BAD_NUMBERS), bad_numbers().map(str),
                     st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                             max_size=12))


# ---------------------------------------------------------------------------
# the command line, in process
# ---------------------------------------------------------------------------
class CaseTimeout(Exception):
    """A case ran past twice CASE_SECONDS and was interrupted (see :func:`time_limit`)."""


@contextlib.contextmanager
def time_limit(seconds: float = 2 * CASE_SECONDS):
    """Interrupt the case (SIGALRM) when it runs past ``seconds``, so that
    code that would run for ever (as the old code did for --steps 1e15) fails
    the case instead of hanging the suite."""
    def alarm(signum, frame):
        raise CaseTimeout(f"still running after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_cli(argv) -> tuple[object, str, str, float]:
    """(exit code or the exception raised, stdout, stderr, seconds) of main(argv)."""
    from core.cli import main

    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    # a fresh working folder per case: relative output names drawn by hypothesis ("nan", "{") land there
    with tempfile.TemporaryDirectory(prefix="hgn-args-") as work, contextlib.chdir(work), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            with time_limit():
                code = main([str(a) for a in argv])
        except SystemExit as exc:  # main should return, never exit; a non-zero exit still counts as clean
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception as exc:  # noqa: BLE001 - any escaping exception is a failure of the case
            code = exc
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - t0


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB


#: set HGN_PROPERTY_TRACE=1 to print every case with its time (to find a slow one)
TRACE = bool(os.environ.get("HGN_PROPERTY_TRACE"))


def cli_problem(argv) -> str | None:
    """What is wrong with how the command line handled argv, or None."""
    if TRACE:
        print(f"cli {[str(a) for a in argv[:1]] + [str(a) for a in argv[1:]][-6:]}", file=sys.__stderr__, flush=True)
    code, out, err, seconds = run_cli(argv)
    if TRACE:
        print(f"  -> {code!r:.40} {seconds:.2f} s", file=sys.__stderr__, flush=True)
    if isinstance(code, BaseException):
        return f"raised {type(code).__name__}: {str(code)[:120]}"
    if seconds > CASE_SECONDS:
        return f"took {seconds:.1f} s"
    if peak_bytes() > PEAK_BYTES:
        return f"peak memory {peak_bytes() / 2 ** 30:.1f} GiB"
    if "Traceback" in err:
        return "printed a traceback"
    if code == 0:
        return None
    lines = [x for x in err.strip().splitlines() if not x.startswith("warning: ")]
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"exit {code} with {len(lines)} error lines: {err[:160]!r}"
    return None


class Tally:
    """Cases tried and failing cases of one test (printed, then asserted empty)."""

    def __init__(self, name: str):
        self.name, self.tried, self.failed = name, 0, []

    def record(self, case, problem):
        self.tried += 1
        if problem is not None:
            self.failed.append((case, problem))

    def check(self):
        print(f"\n[property_args] {self.name}: {self.tried} cases, {len(self.failed)} failed")
        shown = "\n".join(f"  {c!r}: {p}" for c, p in self.failed[:8])
        assert not self.failed, f"{len(self.failed)} of {self.tried} cases failed:\n{shown}"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small model and dataset for rollout and evaluate, made once."""
    d = tmp_path_factory.mktemp("args")
    code, out, err, _ = run_cli(["simulate", "--kind", "chain", "--n", 3, "--steps", 40, "--save-every", 10,
                                 "--trajectories", 2, "--out", d / "t.npz", "--dataset-out", d / "data.npz", "-q"])
    assert code == 0, err
    code, out, err, _ = run_cli(["train", "--kind", "chain", "--n", 3, "--snapshots", 40, "--test-snapshots", 5,
                                 "--out", d / "m.npz", "-q"])
    assert code == 0, err
    return d


def _commands(d):
    """command -> (valid argv, options that take a number, options that take a path)."""
    out = d / "out"
    return {
        "simulate": (["simulate", "--kind", "chain", "--n", 3, "--steps", 20, "--save-every", 5,
                      "--out", out / "s.npz", "-q"],
                     ["--n", "--m", "--l", "--spacing", "--mass", "--dim", "--cutoff", "--density", "--jitter",
                      "--displacement", "--momentum", "--temperature", "--seed", "--dt", "--steps", "--save-every",
                      "--trajectories", "--test-fraction", "-P"],
                     ["--out", "--dataset-out", "--system"]),
        "train": (["train", "--kind", "chain", "--n", 3, "--snapshots", 20, "--test-snapshots", 5,
                   "--out", out / "m.npz", "-q"],
                  ["--n", "--spacing", "--mass", "--snapshots", "--test-snapshots", "--displacement", "--momentum",
                   "--temperature", "--seed", "--node-width", "--edge-width", "--message-width", "--regularisation",
                   "--threads", "--set", "--encoding", "--sampler"],
                  ["--out", "--data", "--config", "--system"]),
        "rollout": (["rollout", "--model", d / "m.npz", "--steps", 20, "--save-every", 5, "--out", out / "r.npz",
                     "-q"],
                    ["--scale", "--displacement", "--momentum", "--temperature", "--seed", "--dt", "--steps",
                     "--save-every", "--tol", "--max-iter", "--threads", "--n", "--integrator", "--precision"],
                    ["--model", "--out", "--json", "--system"]),
        "evaluate": (["evaluate", "--model", d / "m.npz", "--data", d / "data.npz", "--rollouts", 1, "-q"],
                     ["--rollouts", "--tol", "--max-iter", "--threads", "--integrator", "--device"],
                     ["--model", "--data", "--json"]),
        "info": (["info", d / "data.npz"], [], ["FILE"]),
    }


def _replace(argv: list, option: str, value: str) -> list:
    """argv with ``option``'s value replaced (or the option added); "FILE"
    replaces the positional file of info."""
    argv = list(argv)
    if option == "FILE":
        return argv[:1] + [value]
    if option == "-P":
        return argv + ["-P", value]
    if option == "--set":
        return argv + ["--set", f"edge_width={value}"]
    if option in argv:
        argv[argv.index(option) + 1] = value
        return argv
    return argv + [option, value]


@pytest.mark.parametrize("command,examples", [("simulate", 70), ("train", 50), ("rollout", 50),
                                              ("evaluate", 35), ("info", 15)])
def test_bad_arguments_for_every_command(files, command, examples):
    (files / "out").mkdir(exist_ok=True)
    base, numeric, paths = _commands(files)[command]
    tally = Tally(f"cli {command}")
    options = st.sampled_from(numeric + paths) if numeric else st.sampled_from(paths)

    def value_for(option):
        if option in paths:
            return st.one_of(st.sampled_from(BAD_PATHS), bad_values())
        return bad_values()

    pair = options.flatmap(lambda o: st.tuples(st.just(o), value_for(o)))

    @settings(max_examples=examples, **SETTINGS)
    @given(st.lists(pair, min_size=1, max_size=2))
    def case(changes):
        argv = base
        for option, value in changes:
            argv = _replace(argv, option, value)
        tally.record(changes, cli_problem(argv))

    case()
    tally.check()


# ---------------------------------------------------------------------------
# the Python API
# ---------------------------------------------------------------------------
BAD_OBJECTS = [None, "abc", "", "1.0", -1, 0, -0.5, math.nan, math.inf, -math.inf, 1e300, -1e300, 10 ** 30,
               True, [], [1.0, 2.0], {}, {"k": 1}, object(), np.array([np.nan]), np.zeros((2, 2)), 1 + 2j]


def api_calls():
    """name -> (function of the bad value, argument name): each calls a public function with one bad argument."""
    from core.learning.baselines import BaselineConfig
    from core.learning.rfhgn import RFConfig
    from core.physics import builders
    from core.physics.datagen import DataSpec, generate, random_snapshots
    from core.physics.initial import initial_state
    from core.physics.potentials import make_potential
    from core.physics.simulate import simulate

    from core.learning.rfhgn.truth import TrueHamiltonian
    from core.learning.rollout import rollout

    s = builders.chain(3)
    q0, p0 = initial_state(s, seed=0)
    truth = TrueHamiltonian(s)
    return {
        "chain n": lambda v: builders.chain(v),
        "chain spacing": lambda v: builders.chain(3, spacing=v),
        "chain dim": lambda v: builders.chain(3, dim=v),
        "chain mass": lambda v: builders.chain(3, mass=v),
        "chain potential": lambda v: builders.chain(3, potential=v),
        "chain potential_params": lambda v: builders.chain(3, potential_params=v),
        "square m": lambda v: builders.square_lattice(2, v),
        "triangular spacing": lambda v: builders.triangular_lattice(2, 2, spacing=v),
        "cubic l": lambda v: builders.cubic_lattice(2, 2, v),
        "molecular n": lambda v: builders.molecular(v, cutoff=0.5),
        "molecular density": lambda v: builders.molecular(8, density=v, cutoff=0.5),
        "molecular cutoff": lambda v: builders.molecular(8, cutoff=v),
        "molecular seed": lambda v: builders.molecular(8, cutoff=0.5, jitter=0.1, seed=v),
        "molecular jitter": lambda v: builders.molecular(8, cutoff=0.5, jitter=v),
        "molecular periodic": lambda v: builders.molecular(8, cutoff=0.5, periodic=v),
        "custom positions": lambda v: builders.custom(2, v),
        "custom edges": lambda v: builders.custom(2, [[0, 0], [1, 0]], edges=v),
        "custom masses": lambda v: builders.custom(2, [[0, 0], [1, 0]], masses=v),
        "custom box": lambda v: builders.custom(2, [[0, 0], [1, 0]], [[0, 1]], box=v),
        "build kind": lambda v: builders.build(v),
        "rebuild_scaled factor": lambda v: builders.rebuild_scaled(s, v),
        "make_potential param": lambda v: make_potential("morse", D=v),
        "initial displacement": lambda v: initial_state(s, displacement=v),
        "initial momentum": lambda v: initial_state(s, momentum=v),
        "initial temperature": lambda v: initial_state(s, temperature=v),
        "initial seed": lambda v: initial_state(s, seed=v),
        "simulate q0": lambda v: simulate(s, v, p0, 0.01, 5),
        "simulate dt": lambda v: simulate(s, q0, p0, v, 5),
        "simulate steps": lambda v: simulate(s, q0, p0, 0.01, v),
        "simulate save_every": lambda v: simulate(s, q0, p0, 0.01, 5, v),
        "simulate skin": lambda v: simulate(s, q0, p0, 0.01, 5, skin=v),
        "DataSpec steps": lambda v: DataSpec(n_trajectories=1, steps=v),
        "DataSpec.from_dict": lambda v: DataSpec.from_dict(v),
        "generate spec": lambda v: generate(s, v),
        "random_snapshots n": lambda v: random_snapshots(s, v),
        "random_snapshots displacement": lambda v: random_snapshots(s, 3, v),
        "random_snapshots seed": lambda v: random_snapshots(s, 3, seed=v),
        "random_snapshots test_fraction": lambda v: random_snapshots(s, 3, test_fraction=v),
        "RFConfig edge_width": lambda v: RFConfig(edge_width=v),
        "RFConfig regularisation": lambda v: RFConfig(regularisation=v),
        "RFConfig encoding": lambda v: RFConfig(encoding=v),
        "RFConfig.from_dict": lambda v: RFConfig.from_dict(v),
        "RFConfig positional": lambda v: RFConfig(*([v] * 30)),
        "BaselineConfig learning_rate": lambda v: BaselineConfig(learning_rate=v),
        "BaselineConfig optimizer": lambda v: BaselineConfig(optimizer=v),
        "BaselineConfig.from_dict": lambda v: BaselineConfig.from_dict(v),
        "rollout dt": lambda v: rollout(truth, s, q0, p0, v, 5),
        "rollout steps": lambda v: rollout(truth, s, q0, p0, 0.01, v),
        "rollout p0": lambda v: rollout(truth, s, q0, v, 0.01, 5),
        "rollout system": lambda v: rollout(truth, v, q0, p0, 0.01, 5),
        "rollout integrator": lambda v: rollout(truth, s, q0, p0, 0.01, 5, integrator=v),
        "rollout tol": lambda v: rollout(truth, s, q0, p0, 0.01, 5, integrator="implicit", tol=v),
        "rollout threads": lambda v: rollout(truth, s, q0, p0, 0.01, 5, threads=v),
        "rollout device": lambda v: rollout(truth, s, q0, p0, 0.01, 5, device=v),
        "rollout precision": lambda v: rollout(truth, s, q0, p0, 0.01, 5, precision=v),
        "rollout on_divergence": lambda v: rollout(truth, s, q0, p0, 0.01, 5, on_divergence=v),
        "rollout t0": lambda v: rollout(truth, s, q0, p0, 0.01, 5, t0=v),
    }


def api_problem(fn, value) -> str | None:
    if TRACE:
        print(f"api {getattr(fn, 'name', '')} {value!r:.60}", file=sys.__stderr__, flush=True)
    t0 = time.perf_counter()
    try:
        with time_limit():
            fn(value)
    except HGNError:
        pass
    except Exception as exc:  # noqa: BLE001 - anything but HGNError is a failure of the case
        return f"raised {type(exc).__name__}: {str(exc)[:120]}"
    seconds = time.perf_counter() - t0
    if seconds > CASE_SECONDS:
        return f"took {seconds:.1f} s"
    if peak_bytes() > PEAK_BYTES:
        return f"peak memory {peak_bytes() / 2 ** 30:.1f} GiB"
    return None


def test_bad_arguments_for_the_python_api():
    calls = api_calls()
    tally = Tally("python api")

    @settings(max_examples=250, **SETTINGS)
    @given(st.sampled_from(sorted(calls)), st.one_of(st.sampled_from(BAD_OBJECTS), st.text(max_size=8),
                                                      bad_numbers()))
    def case(name, value):
        calls[name].name = name
        tally.record((name, value), api_problem(calls[name], value))

    # every function with every fixed bad value, then the drawn ones
    for name in sorted(calls):
        calls[name].name = name
        for value in BAD_OBJECTS:
            tally.record((name, value), api_problem(calls[name], value))
    case()
    tally.check()
