"""The one adapter to qiskit-ibm-runtime: execution modes, the V2 primitives and their options, the
runtime's errors and usage. Nothing else in nisqdiff calls the runtime's primitives.

The project pins qiskit-ibm-runtime 0.45.1 (pennylane-qiskit 0.45.0 requires it). 0.50 deprecates the
server-side ``SamplerV2``/``EstimatorV2`` in favour of client-side primitives built on its ``Executor``;
moving to those touches this module alone.

Options are the runtime's own (``SamplerOptions`` / ``EstimatorOptions``), named as the runtime names
them with dots for sub-options (``resilience_level``, ``resilience.zne_mitigation``,
``resilience.zne.noise_factors``, ``twirling.enable_gates``, ``execution.rep_delay``, ...), and checked
by the runtime's own validators before anything is submitted.

Execution modes (IBM's "Execution modes" guide): ``session`` (dedicated, paid plans), ``batch``,
``job``, and ``auto`` (the default): a session, and job mode where the plan refuses sessions (the Open
Plan: "You are not authorized to run a session when using the open plan").
"""

from __future__ import annotations

import dataclasses
import sys
import tomllib

from ..backends import redact
from ..errors import DeviceError, UsageError

RUNTIME_VERSION = "0.45.1"
PRIMITIVES = ("sampler", "estimator")
EXECUTION_MODES = ("auto", "session", "batch", "job")
# QPU time per rolling 28-day window (IBM's "Plans" page); None: no fixed limit
PLAN_LIMITS = {"open": 600.0, "pay-as-you-go": None, "flex": None, "premium": None, "dedicated": None}
OPEN_PLAN_JOBS_PER_MINUTE = 5


def _options_class(primitive: str):
    from qiskit_ibm_runtime.options import EstimatorOptions, SamplerOptions

    return {"sampler": SamplerOptions, "estimator": EstimatorOptions}[primitive]


def option_names(primitive: str) -> set[str]:
    """Every option of the runtime's ``SamplerOptions`` or ``EstimatorOptions``, dotted for sub-options
    (``resilience.zne.noise_factors``)."""

    def walk(obj, prefix: str) -> set[str]:
        names = set()
        for f in dataclasses.fields(obj):
            if f.name.startswith("_") or f.name in ("environment", "simulator"):
                continue  # nisqdiff sets the simulator seed itself; environment is the client's logging
            value = getattr(obj, f.name)
            names |= walk(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else {prefix + f.name}
        return names

    return walk(_options_class(primitive)(), "")


def parse_option(text: str, flag: str = "--runtime-option") -> tuple[str, object]:
    """``KEY=VALUE`` of ``flag`` -> (key, value); the value is read as a TOML value (true, 2, 0.5,
    [1, 3, 5], "gate_folding") and otherwise kept as the string. ``UsageError`` without ``=``."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{flag} takes KEY=VALUE (e.g. resilience.zne_mitigation=true), got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def flatten(table: dict, prefix: str = "") -> dict:
    """A nested TOML table of options -> dotted names (``{"resilience": {"zne_mitigation": true}}`` ->
    ``{"resilience.zne_mitigation": true}``)."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value
    return flat


def check_options(primitive: str, options: dict, rep_delay_range: tuple[float, float] | None = None):
    """``options`` (dotted name -> value) as the runtime's options object of ``primitive``, each value
    validated by the runtime. :class:`~nisqdiff.errors.UsageError` in one line for an unknown primitive,
    a name the primitive does not take (naming the primitive that does), a value the runtime refuses,
    or an ``execution.rep_delay`` (seconds) outside the backend's ``rep_delay_range``."""
    if primitive not in PRIMITIVES:
        raise UsageError(f"unknown primitive '{primitive}'; valid: {', '.join(PRIMITIVES)}")
    obj = _options_class(primitive)()
    names = option_names(primitive)
    for name, value in options.items():
        if name not in names:
            other = next((p for p in PRIMITIVES if p != primitive and name in option_names(p)), None)
            if other:
                raise UsageError(f"{name} is an option of the {other} primitive, not the {primitive}; add --primitive {other}")
            close = sorted(n for n in names if n.split(".")[-1] == name.split(".")[-1]) or sorted(n for n in names if "." not in n)
            raise UsageError(f"unknown {primitive} option '{name}'; did you mean: {', '.join(close)}")
        *path, leaf = name.split(".")
        sub = obj
        for part in path:
            sub = getattr(sub, part)
        try:
            setattr(sub, leaf, value)
        except ValueError as exc:  # pydantic's ValidationError
            msgs = [e["msg"] for e in exc.errors() if "UnsetType" not in e["msg"]] or [str(exc)]
            raise UsageError(f"{primitive} option {name}={value!r}: {msgs[0]}") from None
    rep_delay = options.get("execution.rep_delay")
    if rep_delay is not None and rep_delay_range is not None and not rep_delay_range[0] <= rep_delay <= rep_delay_range[1]:
        lo, hi = (x * 1e6 for x in rep_delay_range)
        raise UsageError(f"rep_delay {rep_delay * 1e6:g} us is outside the backend's range [{lo:g}, {hi:g}] us")
    return obj


def set_values(options) -> dict:
    """The options that are set (not the runtime's Unset), nested, as the runtime takes them."""
    from qiskit_ibm_runtime.options.utils import Unset

    def clean(d):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                v = clean(v)
                if v:
                    out[k] = v
            elif v is not Unset and not k.startswith("_"):
                out[k] = v
        return out

    return clean(dataclasses.asdict(options))


def classify(exc: BaseException) -> str | None:
    """What a runtime error means for a run: "session_refused" (the plan has no sessions), "quota"
    (the instance's QPU time is used up; IBM error 4317), "pending" (too many pending jobs; 3458), or
    None (any other error)."""
    text = str(exc).lower()
    if "session" in text and ("open plan" in text or "not authorized" in text):
        return "session_refused"
    if "4317" in text or "quota" in text or "usage limit" in text:
        return "quota"
    if "3458" in text or "pending jobs" in text:
        return "pending"
    return None


def open_mode(backend, execution_mode: str):
    """(mode object or None for job mode, the mode used) on ``backend``. ``auto`` opens a session and
    falls back to job mode, with one line on stderr, where the plan refuses sessions; an explicit
    ``session`` that is refused stops with :class:`~nisqdiff.errors.DeviceError` naming
    ``--execution-mode``."""
    from qiskit_ibm_runtime import Batch, Session

    if execution_mode == "job":
        return None, "job"
    if execution_mode == "batch":
        return Batch(backend=backend), "batch"
    try:
        return Session(backend=backend), "session"
    except Exception as exc:  # noqa: BLE001 - the runtime reports a refused session as several types
        if classify(exc) != "session_refused":
            raise
        if execution_mode == "session":
            raise DeviceError(redact(f"the plan refuses sessions ({exc}); use --execution-mode job or batch")) from None
        print("nisqdiff: this plan runs no sessions (IBM's Open Plan); running in job mode", file=sys.stderr)
        return None, "job"


def make_primitive(primitive: str, mode, options) -> object:
    """The runtime's ``SamplerV2`` or ``EstimatorV2`` on ``mode`` (a Session, a Batch or a backend)
    with ``options`` (the object of :func:`check_options`)."""
    from qiskit_ibm_runtime import EstimatorV2, SamplerV2

    cls = SamplerV2 if primitive == "sampler" else EstimatorV2
    return cls(mode=mode, options=set_values(options))


def set_seed(prim, seed: int) -> None:
    """Seed the local testing mode's simulator (the runtime ignores it on hardware)."""
    prim.options.simulator.seed_simulator = seed


def job_usage(job) -> float | None:
    """Quantum seconds the runtime reports for a finished ``job`` (None where it reports none)."""
    try:
        usage = job.usage()
    except Exception:  # noqa: BLE001 - a job object of another client or an old service
        return None
    return float(usage) if usage is not None else None


def instance_usage(service) -> dict | None:
    """The instance's usage (consumed, limit and remaining seconds) from ``service.usage()``; None
    offline or in local testing mode."""
    try:
        return dict(service.usage())
    except Exception:  # noqa: BLE001 - local service, offline, or an account without usage data
        return None


def executions(primitive: str, options, shots: int) -> dict:
    """What one parameter set of one PUB costs under ``options``, as the runtime will run it:
    ``noise_factors`` (ZNE: one execution per factor; gate folding stretches the circuit by about the
    factor), ``randomizations`` and ``shots_per_randomization`` (twirling: shots are split over random
    circuit instances, at least 64 each by the runtime's "auto" rule), ``shots`` per noise factor.
    ``resilience_level`` enables what IBM's "Configure error mitigation" guide says (1: TREX with
    measurement twirling; 2: also ZNE by gate folding and gate twirling) unless an option says otherwise."""
    import math

    from qiskit_ibm_runtime.options.utils import Unset

    def pick(value, default):
        return default if value is Unset else value

    level = pick(getattr(options, "resilience_level", Unset), 1) if primitive == "estimator" else 0
    twirling = options.twirling
    gates = pick(twirling.enable_gates, level >= 2)
    measure = pick(twirling.enable_measure, primitive == "estimator" and level >= 1)
    factors = [1.0]
    if primitive == "estimator" and pick(options.resilience.zne_mitigation, level >= 2):
        zne = options.resilience.zne
        factors = [float(f) for f in pick(zne.noise_factors, zne._default_noise_factors())]
    n_rand, per_rand = 1, shots
    if gates or measure:
        n_rand, per_rand = pick(twirling.num_randomizations, "auto"), pick(twirling.shots_per_randomization, "auto")
        if per_rand == "auto":
            per_rand = max(64, math.ceil(shots / 32)) if n_rand == "auto" else math.ceil(shots / n_rand)
        if n_rand == "auto":
            n_rand = math.ceil(shots / per_rand)
    return {"noise_factors": factors, "randomizations": n_rand, "shots_per_randomization": per_rand,
            "shots": n_rand * per_rand}  # fmt: skip
