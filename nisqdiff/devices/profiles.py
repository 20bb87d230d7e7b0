"""Device profiles: the readable TOML files of ``devices/`` (installed as ``nisqdiff/profiles``).

A profile names a device ``kind`` (noiseless, shots, aer, aer-noisy, emulator, ibm) and its settings:
shots, seed, calibration, noise_scale, trajectories, backend, sampler, ``[transpile] optimization_level``,
``[mitigation] readout`` and ``zne``, execution_mode, job_timeout_s and ``[limits] max_executions_per_job``. Command-line options override
a profile's values; an option a kind does not take is an error, not silently ignored.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from .base import Device

KIND_OPTIONS = {
    "noiseless": set(),
    "shots": {"shots", "seed"},
    "aer": {"shots", "seed", "optimization_level", "sampler"},
    "aer-noisy": {"shots", "seed", "calibration", "noise_scale", "optimization_level", "mitigate_readout", "method"},
    "emulator": {"shots", "seed", "calibration", "noise_scale", "optimization_level", "mitigate_readout", "trajectories",
                 "zne", "torch_device"},
    "ibm": {"shots", "seed", "backend", "optimization_level", "mitigate_readout", "execution_mode", "job_timeout",
            "max_executions_per_job"},
}  # fmt: skip


def profile_dir() -> Path:
    return Path(str(resources.files("nisqdiff") / "profiles"))


def list_profiles() -> dict[str, dict]:
    """Built-in profiles by name (the file stem), each with its options flattened."""
    return {name: load_profile(name) for name in _names()}


def _names() -> list[str]:
    return sorted(p.stem for p in profile_dir().glob("*.toml"))


def load_profile(name: str) -> dict:
    """Profile ``name`` (built-in) or the profile file at path ``name``, flattened to
    ``{"name", "kind", "description", <options of KIND_OPTIONS>}``. ``ValueError`` listing the valid
    names when there is none, or naming the unknown kind or key."""
    path = Path(name)
    if not (path.suffix == ".toml" and path.is_file()):
        path = profile_dir() / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"unknown device '{name}'; valid: {', '.join(_names())} (or a profile .toml file)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"device profile {path} is not valid TOML: {exc}") from None
    kind = raw.pop("kind", None)
    if kind not in KIND_OPTIONS:
        raise ValueError(f"device profile {path} has kind {kind!r}; valid kinds: {', '.join(KIND_OPTIONS)}")
    flat = {"name": path.stem, "kind": kind, "description": raw.pop("description", "")}
    flat.update(raw.pop("transpile", {}))
    flat.update(raw.pop("limits", {}))
    if "readout" in (mitigation := raw.pop("mitigation", {})):
        flat["mitigate_readout"] = mitigation.pop("readout")
    if mitigation.get("zne"):
        flat["zne"] = tuple(mitigation.pop("zne"))
    mitigation.pop("zne", None)
    flat.update(mitigation)
    if "job_timeout_s" in raw:
        flat["job_timeout"] = raw.pop("job_timeout_s")
    flat.update(raw)
    unknown = set(flat) - {"name", "kind", "description"} - KIND_OPTIONS[kind]
    if unknown:
        raise ValueError(f"device profile {path}: {', '.join(sorted(unknown))} not valid for kind '{kind}'")
    return flat


def needs(profile: dict) -> str:
    """What using the profile needs, in words, for `nisqdiff devices`."""
    kind = profile["kind"]
    if kind in ("aer-noisy", "emulator"):
        return f"calibration {profile.get('calibration')} (--calibration NAME), --noise-scale X"
    if kind == "ibm":
        return "--backend NAME; an IBM Quantum account unless NAME is fake_* (local testing mode)"
    return "--shots N" if "shots" in KIND_OPTIONS[kind] else "nothing"


def make_device(name: str, **options) -> Device:
    """Build the device of profile ``name`` with ``options`` (None = the profile's value) overriding it.

    Options: shots, seed, calibration, noise_scale, method, mitigate_readout, optimization_level, backend,
    execution_mode, job_timeout, max_executions_per_job, trajectories, zne, torch_device (emulator: cpu or cuda),
    sampler (aer: probabilities or aer). Raises ``ValueError`` for an unknown device
    (listing the valid ones), an option its kind does not take, or a missing required one.
    """
    from .emulator import EmulatorDevice
    from .ibm import IBMDevice
    from .simulated import AerDevice, AerNoisyDevice, NoiselessDevice, ShotsDevice

    profile = load_profile(name)
    kind = profile["kind"]
    given = {k: v for k, v in options.items() if v is not None}
    for key in given:
        if key not in KIND_OPTIONS[kind]:
            raise ValueError(f"--{key.replace('_', '-')} does not apply to device '{profile['name']}' (kind {kind})")
    opts = {k: v for k, v in profile.items() if k in KIND_OPTIONS[kind]} | given
    if kind == "noiseless":
        return NoiselessDevice()
    if kind == "shots":
        return ShotsDevice(opts.get("shots", 1024), opts.get("seed", 0))
    if kind == "aer":
        keys = ("shots", "seed", "optimization_level", "sampler")
        return AerDevice(**{k: opts[k] for k in keys if k in opts})
    if kind in ("aer-noisy", "emulator"):
        if "calibration" not in opts:
            from ..calibration import list_calibrations

            raise ValueError(f"device '{name}' needs --calibration NAME; built-in: {', '.join(list_calibrations())}")
        if kind == "emulator":
            keys = (
                "noise_scale",
                "shots",
                "trajectories",
                "seed",
                "mitigate_readout",
                "zne",
                "optimization_level",
                "torch_device",
            )
            return EmulatorDevice(opts["calibration"], **{k: opts[k] for k in keys if k in opts})
        keys = ("noise_scale", "shots", "seed", "mitigate_readout", "optimization_level", "method")
        return AerNoisyDevice(opts["calibration"], **{k: opts[k] for k in keys if k in opts})
    if "backend" not in opts:
        raise ValueError(f"device '{name}' needs --backend NAME (an IBM backend of your account, or fake_sherbrooke, ...)")
    return IBMDevice(**opts)
