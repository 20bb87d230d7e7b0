"""Any installed PennyLane device as a nisqdiff device: the vertex and quanvolution circuits run there.

The circuit is built from the same gate list as every other executor
(:func:`nisqdiff.circuits.reference.pennylane_qnode`); one device call per circuit executes all N
inputs of a denoising step through PennyLane's parameter broadcasting (devices that do not broadcast
natively get PennyLane's ``broadcast_expand``). ``default.qubit`` and ``lightning.qubit`` come with
PennyLane; pennylane-qiskit adds ``qiskit.aer``, ``qiskit.basicsim`` and ``qiskit.remote`` (IBM
hardware through an account). Other vendors' hardware (IonQ, Rigetti, Amazon Braket, ...) is reached
by installing their PennyLane plugin and naming its device; nisqdiff does not install plugins.
"""

from __future__ import annotations

import torch

from ..circuits import ExpvalResult, get_spec
from ..circuits.ansatz import ANSATZE
from ..errors import DeviceError, UsageError
from .base import Device, check_shots, shot_stderr

SEEDED = ("default.qubit", "default.mixed", "lightning.qubit")  # devices that take a seed= argument


def installed_devices() -> list[str]:
    """The PennyLane devices installed here (PennyLane's plugin entry points)."""
    import pennylane as qml

    return sorted(qml.plugin_devices)


class PennyLaneDevice(Device):
    """The circuits on PennyLane device ``pl_device`` (a name of :func:`installed_devices`).

    ``shots``: finite shots (standard errors from them) or None (analytic, standard errors 0);
    ``seed``: the device's seed where it takes one (:data:`SEEDED`); ``pl_options``: keyword arguments
    of ``qml.device`` (e.g. ``backend`` for ``qiskit.remote``, ``wires`` for a device of fixed size).
    Raises :class:`UsageError` for a device that is not installed (listing those that are) and
    :class:`DeviceError` for one PennyLane cannot build or that has fewer wires than a circuit's qubits.
    """

    name = "pennylane"

    def __init__(self, pl_device: str = "default.qubit", shots: int | None = None, seed: int = 0, pl_options: dict | None = None):
        if pl_device not in installed_devices():
            raise UsageError(f"PennyLane device '{pl_device}' is not installed; installed: {', '.join(installed_devices())}")
        self.pl_device, self.seed = pl_device, seed
        self.shots = check_shots(shots) if shots is not None else None
        self.pl_options = dict(pl_options or {})
        self._qnodes: dict = {}
        self._devices: dict = {}
        self._device(max(spec.n_qubits for spec in ANSATZE.values()))

    def settings(self) -> dict:
        return {"device": self.name, "pl_device": self.pl_device, "shots": self.shots, "seed": self.seed, "pl_options": self.pl_options}

    def reseed(self, seed: int) -> None:
        super().reseed(seed)
        if self.pl_device in SEEDED:  # the devices are rebuilt with the new seed
            self._qnodes.clear()
            self._devices.clear()

    def _device(self, n: int):
        """The PennyLane device for ``n``-qubit circuits (built once; at construction for 12 qubits, so
        that a device PennyLane cannot build stops a run before anything is written)."""
        import pennylane as qml

        if n not in self._devices:
            kwargs = {"wires": n} | self.pl_options
            if self.pl_device in SEEDED:
                kwargs.setdefault("seed", self.seed)
            try:
                dev = qml.device(self.pl_device, **kwargs)
            except Exception as exc:  # noqa: BLE001 - plugins raise what they like for bad arguments
                raise DeviceError(f"PennyLane could not build '{self.pl_device}' ({type(exc).__name__}: {exc})") from None
            if dev.wires is not None and len(dev.wires) < n:
                raise DeviceError(f"PennyLane device '{self.pl_device}' has {len(dev.wires)} wires; the circuits need {n}")
            if self.shots is None:
                self._check_analytic(dev)
            self._devices[n] = dev
        return self._devices[n]

    def _check_analytic(self, dev) -> None:
        """Refuse a device that samples when asked for exact values (pennylane-qiskit's qiskit.aer on a
        non-statevector method warns and runs 1,024 shots): its standard errors would claim 0."""
        import warnings

        import pennylane as qml

        probe = qml.set_shots(qml.QNode(lambda: qml.expval(qml.PauliZ(0)), dev), shots=None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            probe()
        if any("analytic" in str(w.message).lower() for w in caught):
            raise DeviceError(f"PennyLane device '{self.pl_device}' cannot compute exact expectation values as configured; "
                              "give --shots N, or a statevector method (qiskit.aer: --pl-option method=statevector)")  # fmt: skip

    def _qnode(self, ansatz: str):
        from ..circuits.reference import pennylane_qnode

        if ansatz not in self._qnodes:
            self._qnodes[ansatz] = pennylane_qnode(ansatz, self._device(get_spec(ansatz).n_qubits), self.shots)
        return self._qnodes[ansatz]

    def _run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        qnode = self._qnode(ansatz)
        self.calls += 1
        evs = torch.stack([qnode(x.double(), w.double()).reshape(x.shape) for x, w in zip(inputs, weights)]).double()
        stds = shot_stderr(evs, self.shots) if self.shots else torch.zeros_like(evs)
        return ExpvalResult(evs, stds, {"calls": self.calls})
