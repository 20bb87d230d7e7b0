"""What a device run costs, said before it is too late: executions counted, wall time estimated, calls shown.

A run on a slow device (``aer-noisy``: Aer's density matrix, 10-16 s per 12-qubit execution) can take
days without saying so. :func:`run_cost` counts a sampling run's device calls and circuit executions
from the model's circuit inventory; :class:`CostWatch` wraps the device (a
:class:`~nisqdiff.circuits.executor.CircuitExecutor`), shows a tqdm bar over device calls with its ETA,
and prints, when its estimate exceeds ``warn_s``, the executions, the estimate and a faster device that
computes the same values. The estimate: a device with ``probe_seconds`` (Aer: seconds per execution,
timed on one input before the run) times the run's executions (errs high: Aer runs a stage's executions
in parallel); otherwise from the first call, its one-off compiling (``compile_seconds`` in the result's
metadata) counted once (errs low by the other stages' one-off work, which is small).
"""

from __future__ import annotations

import math
import sys
import time

import torch

from .circuits import CircuitExecutor, ExpvalResult
from .circuits.executor import Wrapper

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


def watch_device(executor: CircuitExecutor, unet, num: int, steps_per_batch: int, batch_size: int,
                 show: bool = True) -> CircuitExecutor:  # fmt: skip
    """``executor`` under a :class:`CostWatch` sized by :func:`run_cost` if it is a device (the exact
    simulator is returned as it is: nothing to estimate)."""
    from .circuits import ExactSimulator

    if isinstance(executor, ExactSimulator):
        return executor
    cost = run_cost(unet, num, steps_per_batch, batch_size)
    return CostWatch(executor, cost["calls"], cost["executions"], show=show)


def faster_alternative(settings: dict) -> str | None:
    """A device computing the same expectation values faster, as command-line options, or None."""
    if settings.get("device") == "aer-noisy":
        return (f"--device emulator-exact --calibration {settings.get('calibration')} --noise-scale "
                f"{settings.get('noise_scale')} computes the same noisy expectation values exactly (validated "
                "against this Aer model), in seconds per circuit")  # fmt: skip
    if settings.get("device") == "emulator" and settings.get("method") == "trajectories":
        return "--method exact computes the emulator's expectation values exactly, once per circuit"
    return None


class CostWatch(Wrapper):
    """A :class:`~nisqdiff.circuits.executor.CircuitExecutor` that runs ``executor`` under a tqdm bar
    over ``calls`` device calls and warns on stderr when the run's estimated wall time exceeds ``warn_s``
    (see the module doc). ``executions``: the run's circuit executions."""

    def __init__(self, executor: CircuitExecutor, calls: int, executions: int, warn_s: float = WARN_SECONDS,
                 show: bool = True):  # fmt: skip
        from tqdm import tqdm

        super().__init__(executor)
        self.calls, self.executions, self.warn_s = calls, executions, warn_s
        self.bar = tqdm(total=calls, desc=f"device {executor.name}", unit="call", disable=not show, leave=False)
        self.done = 0
        self.estimate_s: float | None = None

    def run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        if self.done == 0 and hasattr(self.executor, "probe_seconds"):  # slow per execution: time one first
            per_execution = self.executor.probe_seconds(ansatz, inputs, weights)
            self._estimated(per_execution * self.executions, f"one execution took {per_execution:.1f} s")
        t0 = time.perf_counter()
        result = self.executor.run(ansatz, inputs, weights)
        self.done += 1
        self.bar.update()
        if self.done == 1 and self.estimate_s is None:
            seconds = time.perf_counter() - t0
            one_off = float(result.metadata.get("compile_seconds", 0.0))
            self._estimated(seconds + (seconds - one_off) * (self.calls - 1),
                            f"the first call took {seconds:.1f} s" + (f", {one_off:.1f} s of it one-off compiling" if one_off else ""))  # fmt: skip
        return result

    def _estimated(self, seconds: float, basis: str) -> None:
        """Record the run's estimated wall time and say it on stderr when it exceeds ``warn_s``."""
        self.estimate_s = seconds
        if seconds > self.warn_s:
            alt = faster_alternative(self.executor.settings())
            self.bar.write(
                f"{self.name}: {self.executions:,} circuit executions in {self.calls:,} device calls; {basis}, so "
                f"about {_duration(seconds)} in all" + (f". {alt}" if alt else ""),
                file=sys.stderr,
            )

    def close(self) -> None:
        self.bar.close()
        super().close()


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"
