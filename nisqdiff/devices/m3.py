"""Readout mitigation of the ``ibm`` sampler with M3 (the ``mthree`` package, Nation et al., PRX
Quantum 2, 040326 (2021)): calibrated on the device at run time, applied to each parameter set's counts.

M3 measures its own calibration circuits (the "balanced" method on hardware: 2 x ``cal_shots`` shots
over Hadamard-generated bit strings, whatever the number of qubits) on the physical qubits the circuits
use, the first time a circuit uses a qubit not calibrated yet, and corrects each measured distribution
in the subspace of the observed bit strings. <Z_q> comes from the corrected quasi-distribution; its
standard error is M3's upper bound sqrt(mitigation overhead / shots). With a run manifest the
calibration is saved as ``DIR/m3_calibration.json``, so a resumed run does not calibrate again.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CAL_SHOTS = 10_000  # M3's default (min(10^4, the backend's max shots))


class M3Readout:
    """M3 for one run on ``backend``: :meth:`calibrate` physical qubits (once each), then
    :meth:`expvals` of bits measured on them. ``cal_file``: where the calibration is kept (None: not
    kept); ``mode``: the runtime Session or Batch the calibration jobs run in (None: job mode)."""

    def __init__(self, backend, cal_file: Path | None = None, cal_shots: int = CAL_SHOTS, rep_delay: float | None = None):
        import mthree

        self.mit = mthree.M3Mitigation(backend)
        self.cal_file, self.cal_shots, self.rep_delay = cal_file, cal_shots, rep_delay
        self.calibrated: set[int] = set()
        self.calibrations = 0
        if cal_file is not None and cal_file.is_file():
            self.mit.cals_from_file(str(cal_file))
            self.calibrated = {q for q, cal in enumerate(self.mit.single_qubit_cals) if cal is not None}

    def calibrate(self, qubits, mode=None) -> None:
        """Run M3's calibration circuits on those of ``qubits`` (physical) not calibrated yet."""
        new = sorted(set(qubits) - self.calibrated)
        if not new:
            return
        self.mit.cals_from_system(qubits=new, shots=self.cal_shots, method="balanced", rep_delay=self.rep_delay,
                                  async_cal=False, runtime_mode=mode)  # fmt: skip
        self.calibrated |= set(new)
        self.calibrations += 1
        if self.cal_file is not None:  # written whole, then renamed: a crash leaves the old file or the new one
            tmp = self.cal_file.with_suffix(".tmp.json")
            self.mit.cals_to_file(str(tmp))
            os.replace(tmp, self.cal_file)

    def expvals(self, bits, physical: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(<Z_q>, standard errors), each (N, n), of a ``BitArray`` (N,) whose classical bit q was
        measured on ``physical[q]``, corrected by M3."""
        n = len(physical)
        ops = ["".join("Z" if j == q else "I" for j in reversed(range(n))) for q in range(n)]  # bit 0 rightmost
        counts = [bits.get_counts(loc=i) for i in range(bits.shape[0])]
        quasis = self.mit.apply_correction(counts, physical, return_mitigation_overhead=True)
        evs = np.array([np.asarray(quasi.expval(ops), dtype=np.float64) for quasi in quasis])
        stds = np.array([np.full(n, quasi.stddev()) for quasi in quasis])
        return evs, stds


def calibrations_needed(circuit_qubits: list[list[int]]) -> int:
    """How many M3 calibrations a run makes: one each time a circuit (in run order) uses a physical
    qubit that no earlier circuit used."""
    seen: set[int] = set()
    count = 0
    for qubits in circuit_qubits:
        if set(qubits) - seen:
            count += 1
            seen |= set(qubits)
    return count
