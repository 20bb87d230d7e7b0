"""The architecture registry: what each name builds (SPEC.md "Architectures"; Chen et al. 2025 for the
bottleneck family).

De Falco et al. 2024's U-Nets have fixed names (:data:`ARCHS`). The lightweight bottleneck U-Nets of
Chen et al. (arXiv 2504.00034) take options in their names, so that a name alone rebuilds a saved model:
``qbottleneck`` (12-qubit, 3-layer ring circuit), ``qbottleneck-q16`` (16 qubits), ``qbottleneck-q16-l2``
(and 2 layers), ``-rgb`` for 3-channel images; ``bottleneck[-q<n>][-rgb]`` is the classical twin, whose
layer in place of the circuit has the same n inputs and outputs; ``bottleneck-const`` the control with
nothing in that place (the channel gate a trained constant per channel).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..circuits.ansatz import RING_LAYERS, RING_QUBITS, ring_name
from ..errors import UsageError


@dataclass(frozen=True)
class ArchConfig:
    """What distinguishes an architecture. De Falco et al.'s U-Net (``family`` "unet"): the vertex
    ansatz and circuit count (``None`` = classical, ``"full"`` = 13 circuits + 1 Basic per convolution)
    and QuanvResBlocks at encoder level 1. The bottleneck U-Net (``family`` "bottleneck"): ``ansatz``
    the ring circuit (None for the classical twin), ``qubits`` its width, ``channels`` of the images."""

    name: str
    ansatz: str | None = None
    n_circuits: int | str | None = None
    quanv: bool = False
    paper_params: int | None = None  # De Falco et al. 2024, Tables 1-2, where printed
    family: str = "unet"
    qubits: int | None = None
    channels: int = 1
    core: str | None = None  # bottleneck family: "circuit", "linear" (the twin) or "none" (constant gate)


ARCHS = {
    a.name: a
    for a in (
        ArchConfig("classical", paper_params=483_321),
        ArchConfig("1hqconv", "hqconv", 1, paper_params=475_329),
        ArchConfig("7hqconv", "hqconv", 7, paper_params=440_985),
        ArchConfig("fullhqconv", "hqconv", "full", paper_params=429_993),
        ArchConfig("1fqconv", "fqconv", 1),
        ArchConfig("7fqconv", "fqconv", 7),
        ArchConfig("fullfqconv", "fqconv", "full"),
        ArchConfig("quanv", "hqconv", 1, quanv=True, paper_params=474_293),
        ArchConfig("bottleneck", family="bottleneck", qubits=12, core="linear"),
        ArchConfig("qbottleneck", ring_name(12, 3), 1, family="bottleneck", qubits=12, core="circuit"),
        ArchConfig("bottleneck-const", family="bottleneck", qubits=12, core="none"),
    )
}
BOTTLENECK_NAME = re.compile(r"(q?)bottleneck(-const)?(?:-q(\d+))?(?:-l(\d+))?(-rgb)?")


def bottleneck_name(quantum: bool, qubits: int = 12, layers: int = 3, channels: int = 1, const: bool = False) -> str:
    """The canonical name of a bottleneck U-Net (defaults left out: ``qbottleneck``, ``bottleneck-q16-rgb``)."""
    name = ("q" if quantum else "") + "bottleneck" + ("-const" if const else "") + (f"-q{qubits}" if qubits != 12 else "")
    name += f"-l{layers}" if quantum and layers != 3 else ""
    return name + ("-rgb" if channels == 3 else "")


@lru_cache(maxsize=None)
def get_arch(name: str) -> ArchConfig:
    """The :class:`ArchConfig` called ``name``; :class:`~nisqdiff.errors.UsageError` listing the valid
    names otherwise (also for a bottleneck name whose qubits or layers are out of range, or that is
    not written canonically, e.g. ``-q12``, so that one model has one name)."""
    if name in ARCHS:
        return ARCHS[name]
    m = BOTTLENECK_NAME.fullmatch(name or "")
    if m:
        quantum, const, qubits, layers = m[1] == "q", bool(m[2]), int(m[3] or 12), int(m[4] or 3)
        if qubits not in RING_QUBITS or layers not in RING_LAYERS or (m[4] and not quantum) or (quantum and const):
            raise UsageError(f"'{name}': a bottleneck takes -q<qubits> with qubits in {RING_QUBITS.start}-{RING_QUBITS.stop - 1},"
                             f" qbottleneck only -l<layers> in {RING_LAYERS.start}-{RING_LAYERS.stop - 1}, bottleneck only -const")  # fmt: skip
        canonical = bottleneck_name(quantum, qubits, layers, 3 if m[5] else 1, const)
        if canonical != name:
            raise UsageError(f"'{name}' is written '{canonical}' (defaults left out)")
        return ArchConfig(name, ring_name(qubits, layers) if quantum else None, 1 if quantum else None, family="bottleneck",
                          qubits=qubits, channels=3 if m[5] else 1, core="circuit" if quantum else "none" if const else "linear")  # fmt: skip
    raise UsageError(f"unknown architecture '{name}'; valid names: {', '.join(ARCHS)} "
                     "(the bottleneck ones take -q<qubits> and -rgb, qbottleneck -l<layers>)")  # fmt: skip
