"""The circuit-executor contract: how a model's circuits are run, by the simulator and by every device.

A model calls its circuits one *stage* at a time (all C circuits of one hybrid layer, with every input
of the batch): ``executor.run(ansatz, inputs (C, B, n_qubits), weights (C, n_weights))``. The answer
reads like a Qiskit Estimator result: expectation values <Z_q> (``evs``), their standard deviations
(``stds``, the standard errors of the estimates; zero where exact) and metadata. The exact simulator
(:class:`ExactSimulator`, the ``noiseless`` device, differentiable, what training uses) and every
device of :mod:`nisqdiff.devices` implement the same :class:`CircuitExecutor` protocol, with the same
argument order; :class:`ExecutionLog` wraps any of them and counts what ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass
class ExpvalResult:
    """One stage's results, as Qiskit's ``EstimatorV2`` reports a PUB: ``evs`` (C, B, n_qubits) <Z_q>,
    ``stds`` (C, B, n_qubits) standard errors of those estimates (0 where exact), ``metadata`` of the
    run (device settings, seconds, ...) and ``circuit_metadata`` (one dict per circuit: depth,
    two-qubit gates, ... where the device transpiles)."""

    evs: torch.Tensor
    stds: torch.Tensor
    metadata: dict = field(default_factory=dict)
    circuit_metadata: list[dict] = field(default_factory=list)


@runtime_checkable
class CircuitExecutor(Protocol):
    """What runs a model's circuits. ``run(ansatz, inputs (C, B, n_qubits) RX angles in radians,
    weights (C, n_weights)) -> ExpvalResult`` with ``evs`` on the inputs' torch device and dtype;
    ``settings()`` is what identifies its results (recorded beside images); ``reseed(seed)`` restarts
    its random streams (a study seeds every batch); ``close()`` releases what it holds (a runtime
    session). Shapes that do not fit the ansatz raise ``ValueError``."""

    name: str

    def run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult: ...

    def settings(self) -> dict: ...

    def reseed(self, seed: int) -> None: ...

    def close(self) -> None: ...


class BaseExecutor:
    """Defaults of the contract for executors to build on: ``settings`` names the executor, ``reseed``
    and ``close`` do nothing, and an executor is a context manager that closes on exit."""

    name = "executor"

    def settings(self) -> dict:
        return {"device": self.name}

    def reseed(self, seed: int) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ExactSimulator(BaseExecutor):
    """The exact, differentiable simulator (:func:`nisqdiff.circuits.simulate`) behind the executor
    contract: the ``noiseless`` device and what every model trains with. ``stds`` are zeros."""

    name = "noiseless"

    def run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        from . import simulate

        z = simulate(ansatz, inputs, weights)
        return ExpvalResult(z, torch.zeros_like(z), {"device": self.name})


class Wrapper:
    """Base of the executors that run another one (``executor``) and add to it: its name, ``settings``,
    ``reseed`` and ``close`` are the wrapped executor's."""

    def __init__(self, executor: CircuitExecutor):
        self.executor = executor
        self.name = executor.name

    def settings(self) -> dict:
        return self.executor.settings()

    def reseed(self, seed: int) -> None:
        self.executor.reseed(seed)

    def close(self) -> None:
        self.executor.close()


class ExecutionLog(Wrapper):
    """A :class:`CircuitExecutor` that runs another one and counts what ran: stage calls, circuit
    executions, seconds and the mean and largest standard error, for the run's metadata
    (:meth:`summary`). Inputs are detached: for sampling, not training."""

    def __init__(self, executor: CircuitExecutor):
        super().__init__(executor)
        self.calls = 0
        self.executions = 0
        self.seconds = 0.0
        self.max_stderr = 0.0
        self.stderr_sum = 0.0

    def run(self, ansatz: str, inputs: torch.Tensor, weights: torch.Tensor) -> ExpvalResult:
        t0 = time.perf_counter()
        with torch.no_grad():
            result = self.executor.run(ansatz, inputs.detach(), weights.detach())
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.executions += inputs.shape[0] * inputs.shape[1]
        self.max_stderr = max(self.max_stderr, float(result.stds.max()))
        self.stderr_sum += float(result.stds.double().mean())
        return result

    def summary(self) -> dict:
        """The executor's settings with the counts: device_calls, circuit_executions, device_seconds,
        max_stderr, mean_stderr (the mean over calls of each call's mean standard error)."""
        return {
            **self.executor.settings(),
            "device_calls": self.calls,
            "circuit_executions": self.executions,
            "device_seconds": round(self.seconds, 3),
            "max_stderr": self.max_stderr,
            "mean_stderr": self.stderr_sum / max(self.calls, 1),
        }


def merge_summaries(summaries: list[dict], settings: dict) -> dict:
    """One :meth:`ExecutionLog.summary` of several runs (batches, ranks, resumed invocations): ``settings``'
    device settings with the counts summed, the largest max_stderr and the call-weighted mean_stderr."""
    calls = sum(s["device_calls"] for s in summaries)
    return {
        **settings,
        "device_calls": calls,
        "circuit_executions": sum(s["circuit_executions"] for s in summaries),
        "device_seconds": round(sum(s["device_seconds"] for s in summaries), 3),
        "max_stderr": max((s["max_stderr"] for s in summaries), default=0.0),
        "mean_stderr": sum(s["mean_stderr"] * s["device_calls"] for s in summaries) / max(calls, 1),
    }
