"""IBM backends by name: qiskit-ibm-runtime's fake backends (local testing mode) or the saved account's.

A name starting with ``fake_`` is one of qiskit-ibm-runtime's fake backends, run in local testing mode
(its calibrated noise on Aer, no account, no network); any other name is looked up with
``QiskitRuntimeService()`` (the saved account, or QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE /
QISKIT_IBM_CHANNEL). Used by the ``ibm`` device and by ``nisqdiff calibration pull``.
"""

from __future__ import annotations

from .errors import DeviceError

MIN_QUBITS = 12
OFFLINE = "check the network and the account, or work offline with a fake backend (--backend fake_sherbrooke)"


def redact(text: str) -> str:
    """``text`` with the IBM Quantum token of the environment (QISKIT_IBM_TOKEN) replaced by ***, for
    error messages that quote the runtime's own."""
    import os

    token = os.environ.get("QISKIT_IBM_TOKEN")
    return text.replace(token, "***") if token else text


def fake_backend_names(min_qubits: int = MIN_QUBITS) -> list[str]:
    """qiskit-ibm-runtime's fake backends with at least ``min_qubits`` qubits."""
    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    return sorted(b.name for b in FakeProviderForBackendV2().backends() if b.num_qubits >= min_qubits)


def resolve_backend(name: str):
    """``(backend, service, local)`` for ``name``: a fake backend in local testing mode, or a backend
    of the saved IBM Quantum account. Raises :class:`~nisqdiff.errors.DeviceError` for missing
    credentials, an unknown name (listing the valid ones) or a backend with fewer than 12 qubits."""
    import warnings

    from qiskit.providers.exceptions import QiskitBackendNotFoundError

    if name.startswith("fake_"):
        from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService

        service, local = QiskitRuntimeLocalService(), True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                backend = service.backend(name)
        except QiskitBackendNotFoundError:
            raise DeviceError(f"unknown fake backend '{name}'; valid: {', '.join(fake_backend_names())}") from None
    else:
        from qiskit_ibm_runtime import QiskitRuntimeService
        from qiskit_ibm_runtime.accounts import AccountNotFoundError

        local = False
        try:
            service = QiskitRuntimeService()
        except AccountNotFoundError:
            raise DeviceError(
                "no IBM Quantum account: save one with QiskitRuntimeService.save_account(token=..., instance=...) or set "
                "QISKIT_IBM_TOKEN and QISKIT_IBM_INSTANCE; for local testing use a fake backend (--backend fake_sherbrooke)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - offline, refused or garbled answers surface as many types
            raise DeviceError(redact(f"could not reach IBM Quantum ({type(exc).__name__}: {exc}); {OFFLINE}")) from None
        try:
            backend = service.backend(name)
        except QiskitBackendNotFoundError:
            names = ", ".join(sorted(b.name for b in service.backends()))
            raise DeviceError(f"unknown backend '{name}' for this account; available: {names}") from None
        except Exception as exc:  # noqa: BLE001 - as above
            raise DeviceError(redact(f"could not reach IBM Quantum for backend '{name}' ({type(exc).__name__}: {exc}); {OFFLINE}")) from None
    if backend.num_qubits < MIN_QUBITS:
        raise DeviceError(f"backend '{name}' has {backend.num_qubits} qubits; the circuits need {MIN_QUBITS}")
    return backend, service, local
