"""Export calibration snapshots from qiskit-ibm-runtime's fake backends into nisqdiff/calibrations/.

    python scripts/export_calibrations.py FakeSherbrooke FakeTorino FakeKyiv

Each fake backend carries a real device calibration captured by IBM (its date is kept in the snapshot).
"""

from __future__ import annotations

import json
import sys

import qiskit_ibm_runtime
from qiskit_ibm_runtime import fake_provider

from nisqdiff.calibration import calibration_dir, snapshot_from_backend
from nisqdiff.checkpoints import atomic_write_text


def main() -> None:
    for cls_name in sys.argv[1:] or ["FakeSherbrooke", "FakeTorino", "FakeKyiv"]:
        backend = getattr(fake_provider, cls_name)()
        origin = f"qiskit-ibm-runtime {qiskit_ibm_runtime.__version__} fake_provider.{cls_name}"
        snap = snapshot_from_backend(backend, origin)
        path = calibration_dir() / f"{snap['name']}.json"
        atomic_write_text(path, json.dumps(snap, indent=1) + "\n")
        print(f"{path}: {snap['num_qubits']} qubits, {snap['basis_gates']}, calibrated {snap['calibration_date']}")


if __name__ == "__main__":
    main()
