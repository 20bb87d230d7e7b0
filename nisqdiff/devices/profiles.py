"""Device profiles: the readable TOML files of ``devices/`` (installed as ``nisqdiff/profiles``).

A profile names a device ``kind`` (noiseless, depolarized, shots, aer, aer-noisy, emulator, ibm) and its settings:
shots, seed, calibration, noise_scale, trajectories, backend, sampler, ``[transpile] optimization_level``,
``[mitigation] readout`` and ``zne``, execution_mode, job_timeout_s and ``[limits] max_executions_per_job``.
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
    if "job_timeout_s" in raw:
        flat["job_timeout"] = raw.pop("job_timeout_s")
    flat.update(raw)
    unknown = set(flat) - {"name", "kind", "description"} - KIND_OPTIONS[kind]
    if unknown:
        raise UsageError(f"device profile {path}: {', '.join(sorted(unknown))} not valid for kind '{kind}'")
    return flat


def needs(profile: dict) -> str:
    """What using the profile needs, in words, for `nisqdiff devices`."""
    kind = profile["kind"]
    if kind in ("aer-noisy", "emulator"):
        return f"calibration {profile.get('calibration')} (--calibration NAME), --noise-scale X"
    if kind == "ibm":
        return "--backend NAME; an IBM Quantum account unless NAME is fake_* (local testing mode)"
    return "--shots N" if "shots" in KIND_OPTIONS[kind] else "nothing"
