"""The one device factory: a profile plus overrides -> a device, and the study's setting strings.

Every device is built here, by :func:`make_device`, from a profile (``devices/*.toml``, see
:mod:`.profiles`) and overrides (command-line options or a study setting). A study's setting string is
parsed by :func:`parse_setting` into a :class:`DeviceSpec` (a label, a profile name and overrides) and
goes through the same factory, so ``emulator:fake_sherbrooke@1/1024+exact+readout`` builds the same
device as ``--device emulator --method exact --calibration fake_sherbrooke --noise-scale 1 --shots 1024
--mitigate-readout``. ``+zne`` runs the noise factors 1, 2, 3 with Richardson's extrapolation,
``+zne-linear``, ``+zne-exponential``, ``+zne-polynomial_degree_K`` the other extrapolators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..circuits import CircuitExecutor, ExactSimulator
from ..errors import StudyError, UsageError
from .base import check_seed
from .profiles import KIND_OPTIONS, load_profile
from .zne import DEFAULT_FACTORS

GRAMMAR = (
    "noiseless | depolarized | shots:SHOTS | emulator:CALIBRATION@SCALE[/SHOTS][+exact][+readout][+zne[-EXTRAPOLATOR]] | "
    "aer-noisy:CALIBRATION@SCALE[/SHOTS][+readout]"
)
SETTING_KINDS = ("noiseless", "depolarized", "shots", "emulator", "aer-noisy")
_NOISY = re.compile(r"^(emulator|aer-noisy):([^@/+]+)@([0-9.]+(?:e-?[0-9]+)?)(?:/([0-9]+))?((?:\+[a-z0-9_-]+)*)$")
_EMULATOR_EXTRA = re.compile(r"exact|zne(-(richardson|linear|exponential|polynomial_degree_[1-7]))?")


@dataclass(frozen=True)
class DeviceSpec:
    """A device as a study names it: ``label`` (the setting string), ``profile`` (a profile name) and
    ``overrides`` (options of :func:`make_device` that replace the profile's values)."""

    label: str
    profile: str
    overrides: dict = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The label as a folder name."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.label).strip("-")

    def options(self) -> dict:
        """The profile's options with the overrides applied, and its ``kind``."""
        profile = load_profile(self.profile)
        return {k: v for k, v in profile.items() if k in KIND_OPTIONS[profile["kind"]]} | self.overrides | {
            "kind": profile["kind"]
        }


def parse_setting(text: str, default_shots: int = 1024) -> DeviceSpec:
    """One setting string of :data:`GRAMMAR` -> its :class:`DeviceSpec` (noisy settings without
    /SHOTS get ``default_shots``). :class:`~nisqdiff.errors.StudyError` naming the grammar or the valid
    kinds; :class:`~nisqdiff.errors.CalibrationError` for an unknown calibration."""
    text = text.strip()
    if text in ("noiseless", "depolarized"):
        return DeviceSpec(text, text)
    if text.startswith("shots:"):
        if not text[6:].isdigit() or int(text[6:]) < 2:
            raise StudyError(f"device {text!r}: shots must be an integer >= 2; grammar: {GRAMMAR}")
        return DeviceSpec(text, "shots", {"shots": int(text[6:])})
    m = _NOISY.match(text)
    if m is None:
        kind = text.split(":", 1)[0]
        if kind not in SETTING_KINDS:
            raise StudyError(f"unknown device kind {kind!r} in {text!r}; valid: {', '.join(SETTING_KINDS)}; grammar: {GRAMMAR}")
        raise StudyError(f"device {text!r} does not parse; grammar: {GRAMMAR}")
    kind, calibration, scale, shots, extras = m.groups()
    options = [e for e in extras.split("+") if e]
    bad = [e for e in options if e != "readout" and not (kind == "emulator" and _EMULATOR_EXTRA.fullmatch(e))]
    if sum(e.startswith("zne") for e in options) > 1:
        bad.append("zne (once)")
    if bad or len(set(options)) != len(options):
        raise StudyError(f"device {text!r}: unknown or repeated option(s) {', '.join(bad) or options}; grammar: {GRAMMAR}")
    from ..calibration import load_calibration

    load_calibration(calibration)  # unknown name -> CalibrationError listing the valid ones
    overrides = {"calibration": calibration, "noise_scale": float(scale), "shots": int(shots) if shots else default_shots}
    if "readout" in options:
        overrides["mitigate_readout"] = True
    if "exact" in options:
        overrides["method"] = "exact"
    for e in options:
        if e.startswith("zne"):
            overrides["zne"] = DEFAULT_FACTORS
            overrides["zne_extrapolator"] = e[4:] or "richardson"
    return DeviceSpec(text, kind, overrides)


def parse_settings(text: str, default_shots: int = 1024) -> list[DeviceSpec]:
    """Comma-separated setting strings -> specs (no duplicates); :class:`~nisqdiff.errors.StudyError`."""
    specs = [parse_setting(t, default_shots) for t in text.split(",") if t.strip()]
    if not specs:
        raise StudyError(f"--devices is empty; grammar: {GRAMMAR}")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise StudyError(f"--devices repeats a setting: {', '.join(sorted({x for x in labels if labels.count(x) > 1}))}")
    return specs


def make_device(device: str | DeviceSpec, **options) -> CircuitExecutor:
    """Build the device of profile ``device`` (a name, a .toml path or a :class:`DeviceSpec`) with
    ``options`` (None = the profile's value) overriding it. Returns a
    :class:`~nisqdiff.circuits.executor.CircuitExecutor`: ``noiseless`` is the exact simulator itself.

    Options: shots, seed, calibration, noise_scale, method (emulator: exact or trajectories; aer-noisy:
    Aer's), mitigate_readout, zne (factors), zne_extrapolator, optimization_level, backend,
    execution_mode, job_timeout, max_executions_per_job, primitive, runtime_options (added to the
    profile's), plan, trajectories, torch_device (emulator: cpu or
    cuda), sampler (aer: probabilities or aer), pl_device and pl_options (pennylane). Raises :class:`~nisqdiff.errors.UsageError` for an
    unknown device (listing the valid ones), an option its kind does not take, or a missing required one.
    """
    from .emulator import EmulatorDevice
    from .ibm import IBMDevice
    from .pennylane import PennyLaneDevice
    from .simulated import AerDevice, AerNoisyDevice, DepolarizedDevice, ShotsDevice

    spec = device if isinstance(device, DeviceSpec) else DeviceSpec(str(device), str(device))
    spec = DeviceSpec(spec.label, spec.profile, spec.overrides | {k: v for k, v in options.items() if v is not None})
    opts = spec.options()
    kind = opts.pop("kind")
    if "runtime_options" in spec.overrides:  # overrides add to the profile's runtime options
        opts["runtime_options"] = load_profile(spec.profile).get("runtime_options", {}) | spec.overrides["runtime_options"]
    for key in spec.overrides:
        if key not in KIND_OPTIONS[kind]:
            raise UsageError(f"--{key.replace('_', '-')} does not apply to device '{load_profile(spec.profile)['name']}' (kind {kind})")
    if kind == "emulator" and opts.get("method") == "exact":
        if "trajectories" in spec.overrides:
            raise UsageError("--trajectories is unused by the emulator's exact method; drop it (or use --method trajectories)")
        opts.pop("trajectories", None)
    if opts.get("mitigate_readout") == "m3" and kind != "ibm":
        raise UsageError(f"--m3 applies to device kind ibm, not '{spec.profile}' (kind {kind}); use --mitigate-readout")
    if "seed" in opts:
        check_seed(opts["seed"])
    if opts.get("job_timeout") is not None and not opts["job_timeout"] > 0:
        raise UsageError(f"--job-timeout must be a positive number of seconds, got {opts['job_timeout']}")

    # opts holds only options of KIND_OPTIONS[kind], which are the keyword arguments of the kind's class
    if kind == "noiseless":
        return ExactSimulator()
    if kind == "depolarized":
        return DepolarizedDevice()
    if kind == "shots":
        return ShotsDevice(**opts)
    if kind == "aer":
        return AerDevice(**opts)
    if kind == "pennylane":
        return PennyLaneDevice(**opts)
    if kind in ("aer-noisy", "emulator"):
        if "calibration" not in opts:
            from ..calibration import list_calibrations

            raise UsageError(f"device '{spec.profile}' needs --calibration NAME; built-in: {', '.join(list_calibrations())}")
        return (EmulatorDevice if kind == "emulator" else AerNoisyDevice)(**opts)
    if "backend" not in opts:
        raise UsageError(f"device '{spec.profile}' needs --backend NAME (an IBM backend of your account, or fake_sherbrooke, ...)")
    return IBMDevice(**opts)
