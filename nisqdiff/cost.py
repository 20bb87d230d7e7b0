"""What a device run costs, said before it is too late: executions counted, wall time estimated, calls shown.

A run on a slow device (``aer-noisy``: Aer's density matrix, 10-16 s per 12-qubit execution) can take
days without saying so. :func:`run_cost` counts a sampling run's device calls and circuit executions
from the model's circuit inventory; :class:`CostWatch` wraps the device (a
:class:`~nisqdiff.circuits.executor.CircuitExecutor`), shows a tqdm bar over device calls with its ETA,
and after the first call prints, when the estimate exceeds ``warn_s``, the executions, the estimate
(first call's seconds x calls: it includes one-off work such as transpiling, so it errs high) and a
faster device that computes the same values.
"""

from __future__ import annotations

import math
import sys
import time

import torch

from .circuits import CircuitExecutor, ExpvalResult

WARN_SECONDS = 180.0


def run_cost(unet, num: int, steps_per_batch: int, batch_size: int) -> dict:
    """{"calls", "executions"} of sampling ``num`` images in batches of ``batch_size`` with
    ``steps_per_batch`` denoising steps: one device call per circuit stage and step of each batch, one
    execution per patch, image, circuit and step (``unet.circuit_inventory()``)."""
    inventory = unet.circuit_inventory()
    stages = len({c["stage"] for c in inventory})
    per_image_step = sum(c["inputs_per_image"] for c in inventory)
    return {"calls": stages * steps_per_batch * math.ceil(num / batch_size),
            "executions": per_image_step * steps_per_batch * num}  # fmt: skip


def faster_alternative(settings: dict) -> str | None:
    """A device computing the same expectation values faster, as command-line options, or None."""
    if settings.get("device") == "aer-noisy":
        return (f"--device emulator-exact --calibration {settings.get('calibration')} --noise-scale "
                f"{settings.get('noise_scale')} computes the same noisy expectation values exactly (validated "
                "against this Aer model), in seconds per circuit")  # fmt: skip
    if settings.get("device") == "emulator" and settings.get("method") == "trajectories":
        return "--method exact computes the emulator's expectation values exactly, once per circuit"
    return None


class CostWatch:
    """A :class:`~nisqdiff.circuits.executor.CircuitExecutor` that runs ``executor`` under a tqdm bar
    over ``calls`` device calls and warns on stderr after the first call when ``calls`` x its seconds
    exceeds ``warn_s`` (see the module doc). ``executions``: the run's circuit executions (for the message)."""

    def __init__(self, executor: CircuitExecutor, calls: int, executions: int, warn_s: float = WARN_SECONDS,
                 show: bool = True):  # fmt: skip
        from tqdm import tqdm

        self.executor, self.name = executor, executor.name
        self.calls, self.executions, self.warn_s = calls, executions, warn_s
        self.bar = tqdm(total=calls, desc=f"device {executor.name}", unit="call", disable=not show, leave=False)
        self.done = 0
        self.estimate_s: float | None = None

    def run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        t0 = time.perf_counter()
        result = self.executor.run(ansatz, inputs, weights)
        self.done += 1
        self.bar.update()
        if self.done == 1:
            self.estimate_s = (time.perf_counter() - t0) * self.calls
            if self.estimate_s > self.warn_s:
                alt = faster_alternative(self.executor.settings())
                self.bar.write(
                    f"{self.name}: {self.executions:,} circuit executions in {self.calls:,} device calls; the first call "
                    f"took {self.estimate_s / self.calls:.1f} s with its one-off work (transpiling, compiling), so at "
                    f"most about {_duration(self.estimate_s)} in all" + (f". {alt}" if alt else ""),
                    file=sys.stderr,
                )
        return result

    def settings(self) -> dict:
        return self.executor.settings()

    def reseed(self, seed: int) -> None:
        self.executor.reseed(seed)

    def close(self) -> None:
        self.bar.close()
        self.executor.close()


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
