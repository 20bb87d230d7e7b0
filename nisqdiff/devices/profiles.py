"""Device profiles: the readable TOML files of ``devices/`` (installed as ``nisqdiff/profiles``).

A profile names a device ``kind`` (noiseless, depolarized, shots, aer, aer-noisy, emulator, ibm, pennylane) and its settings:
shots, seed, calibration, noise_scale, method, trajectories, backend, sampler, ``[transpile]
optimization_level``, ``[mitigation] readout``, ``zne`` and ``zne_extrapolator``, execution_mode, job_timeout_s, ``[limits] max_executions_per_job``; ibm: primitive, plan and ``[options]`` (the
runtime's primitive options, named and nested as the runtime names them).
:func:`nisqdiff.devices.factory.make_device` builds a device from a profile and overrides.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from ..errors import UsageError

KIND_OPTIONS = {
    "noiseless": set(),
    "depolarized": set(),
    "shots": {"shots", "seed"},
    "aer": {"shots", "seed", "optimization_level", "sampler"},
    "aer-noisy": {"shots", "seed", "calibration", "noise_scale", "optimization_level", "mitigate_readout", "method"},
    "emulator": {"shots", "seed", "calibration", "noise_scale", "optimization_level", "mitigate_readout", "trajectories",
                 "zne", "zne_extrapolator", "method", "torch_device"},
    "ibm": {"shots", "seed", "backend", "optimization_level", "mitigate_readout", "execution_mode", "job_timeout",
            "max_executions_per_job", "primitive", "runtime_options", "plan"},
    "pennylane": {"shots", "seed", "pl_device", "pl_options"},
}  # fmt: skip


OPTION_TYPES = {
    "shots": int, "seed": int, "calibration": str, "noise_scale": (int, float), "trajectories": int, "backend": str,
    "sampler": str, "optimization_level": int, "mitigate_readout": (bool, str), "zne": tuple, "execution_mode": str,
    "job_timeout": (int, float), "max_executions_per_job": int, "method": str, "torch_device": str,
    "zne_extrapolator": str, "primitive": str, "runtime_options": dict, "plan": str,
    "pl_device": str, "pl_options": dict,
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
    ``{"name", "kind", "description", <options of KIND_OPTIONS>}``. :class:`~nisqdiff.errors.UsageError`
    listing the valid names when there is none, or naming the unknown kind or key."""
    path = Path(name)
    if not (path.suffix == ".toml" and path.is_file()):
        path = profile_dir() / f"{name}.toml"
    if not path.is_file():
        raise UsageError(f"unknown device '{name}'; valid: {', '.join(_names())} (or a profile .toml file)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"device profile {path} is not valid TOML: {exc}") from None
    kind = raw.pop("kind", None)
    if kind not in KIND_OPTIONS:
        raise UsageError(f"device profile {path} has kind {kind!r}; valid kinds: {', '.join(KIND_OPTIONS)}")
    flat = {"name": path.stem, "kind": kind, "description": raw.pop("description", "")}
    flat.update(raw.pop("transpile", {}))
    flat.update(raw.pop("limits", {}))
    if "readout" in (mitigation := raw.pop("mitigation", {})):
        flat["mitigate_readout"] = mitigation.pop("readout")
    if mitigation.get("zne"):
        flat["zne"] = tuple(mitigation.pop("zne"))
    mitigation.pop("zne", None)
    flat.update(mitigation)
    if "pl_options" in raw:  # keyword arguments of qml.device
        flat["pl_options"] = raw.pop("pl_options")
    if "options" in raw:  # the runtime's primitive options, nested as the runtime nests them
        from .runtime import flatten

        flat["runtime_options"] = flatten(raw.pop("options"))
    if "job_timeout_s" in raw:
        flat["job_timeout"] = raw.pop("job_timeout_s")
    flat.update(raw)
    unknown = set(flat) - {"name", "kind", "description"} - KIND_OPTIONS[kind]
    if unknown:
        raise UsageError(f"device profile {path}: {', '.join(sorted(unknown))} not valid for kind '{kind}'")
    for key, value in flat.items():
        want = OPTION_TYPES.get(key)
        wants = want if isinstance(want, tuple) else (want,)
        wrong_bool = isinstance(value, bool) and bool not in wants  # TOML true is not a number
        if want is not None and (wrong_bool or not isinstance(value, want)):
            names = " or ".join(t.__name__ for t in wants)
            raise UsageError(f"device profile {path}: {key} must be {names}, got {value!r}")
    if isinstance(flat.get("mitigate_readout"), str) and (kind != "ibm" or flat["mitigate_readout"] != "m3"):
        raise UsageError(f"device profile {path}: [mitigation] readout must be true or false" + (' or "m3"' if kind == "ibm" else ""))
    if "optimization_level" in flat and flat["optimization_level"] not in (0, 1, 2, 3):
        raise UsageError(f"device profile {path}: optimization_level must be 0, 1, 2 or 3, got {flat['optimization_level']}")
    return flat


def needs(profile: dict) -> str:
    """What using the profile needs, in words, for `nisqdiff devices`."""
    kind = profile["kind"]
    if kind in ("aer-noisy", "emulator"):
        return f"calibration {profile.get('calibration')} (--calibration NAME), --noise-scale X"
    if kind == "pennylane":
        return "--pl-device NAME (an installed PennyLane device), --shots N optional"
    if kind == "ibm":
        return "--backend NAME; an IBM Quantum account unless NAME is fake_* (local testing mode)"
    return "--shots N" if "shots" in KIND_OPTIONS[kind] else "nothing"
