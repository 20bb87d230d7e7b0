"""The plan of a QPU run: what sampling would submit, what it would cost, and what fits a budget.

:func:`plan_run` reads the model's circuit inventory (:meth:`~nisqdiff.models.UNet.circuit_inventory`),
transpiles each circuit for the backend once and counts jobs, PUBs, circuit executions and shots as the
runtime will run them (:func:`nisqdiff.devices.runtime.executions`: ZNE noise factors, twirling
randomizations). The QPU time estimate is

    sum over circuits, parameter sets and noise factors f of  shots x (f x scheduled duration + rep_delay),

plus M3's calibration circuits (``--m3``: 2 x 10,000 shots of a measurement per calibration); it
leaves out per-job overhead, the estimator's readout-learning circuits and queueing. ``--budget``
refuses a run whose estimate exceeds it and names the largest ``--num``, ``--steps`` and ``--shots``
that fit with the other two unchanged.
"""

from __future__ import annotations

from .devices import IBMDevice, runtime
from .devices.base import physical_qubits
from .devices.m3 import CAL_SHOTS, calibrations_needed
from .errors import UsageError


def _circuits(pipe, device: IBMDevice) -> list[dict]:
    """Per circuit of the model: stage, inputs per image, transpiled stats, duration and rep delay (s)."""
    out = []
    for c in pipe.unet.circuit_inventory():
        transpiled = device.transpiled(c["ansatz"], c["weights"])
        per_shot = device.circuit_seconds(transpiled)
        out.append({"stage": c["stage"], "inputs_per_image": c["inputs_per_image"], "ansatz": c["ansatz"], **transpiled.metadata,
                    "seconds_per_shot": per_shot, "duration": per_shot - device.rep_delay(),
                    "physical_qubits": physical_qubits(transpiled, len(transpiled.clbits))})  # fmt: skip
    return out


def plan_run(pipe, device: IBMDevice, num: int, steps: int, shots: int | None = None, circuits: list | None = None) -> dict:
    """What sampling ``num`` images with ``steps`` model calls on ``device`` would submit, without
    submitting (``shots``: instead of the device's): jobs, PUBs, circuit executions (parameter sets x
    noise factors x randomizations), total shots and ``qpu_seconds_estimate``, with the plan's limit."""
    shots = shots or device.shots
    circuits = circuits if circuits is not None else _circuits(pipe, device)
    cost = runtime.executions(device.primitive, device.options, shots)
    per_execution = len(cost["noise_factors"]) * cost["randomizations"]
    stages: dict[int, list[dict]] = {}
    for c in circuits:
        stages.setdefault(c["stage"], []).append(c)
    jobs = rows_total = 0
    seconds = 0.0
    for members in stages.values():
        rows = num * members[0]["inputs_per_image"]
        jobs += len(device.job_plan(len(members), rows))
        for c in members:
            rows_total += rows
            seconds += rows * sum(cost["shots"] * (f * c["duration"] + device.rep_delay()) for f in cost["noise_factors"])
    m3_calibrations = calibrations_needed([c["physical_qubits"] for c in circuits]) if device.mitigate_readout == "m3" else 0
    m3_shots = m3_calibrations * 2 * CAL_SHOTS  # the balanced method: 2 x cal_shots per calibration
    seconds_m3 = m3_shots * (device.measure_seconds() + device.rep_delay())
    plan = {
        "backend": device.backend.name,
        "local_testing_mode": device.local,
        "primitive": device.primitive,
        "calibration": device.calibration_id(),
        "circuit_stages_per_step": len(stages),
        "circuits": circuits,
        "steps": steps,
        "jobs": jobs * steps,
        "pubs": len(circuits) * steps,
        "parameter_sets": rows_total * steps,
        "circuit_executions": rows_total * per_execution * steps,
        "shots": shots,
        "mitigation": cost,
        "total_shots": rows_total * len(cost["noise_factors"]) * cost["shots"] * steps,
        "m3_calibrations": m3_calibrations,
        "m3_shots": m3_shots,
        "qpu_seconds_estimate": seconds * steps + seconds_m3,
        "rep_delay": device.rep_delay(),
        "execution_mode": device.execution_mode,
        "plan": device.plan,
        "plan_limit_seconds": runtime.PLAN_LIMITS[device.plan],
    }
    return plan


def largest_fitting(pipe, device: IBMDevice, num: int, steps: int, shots: int, budget: float, sampler: str) -> dict:
    """The largest ``num``, ``steps`` (DDIM only; None for DDPM) and ``shots``, each with the other two
    as given, whose estimate is within ``budget`` seconds (0 where even the smallest value does not fit)."""
    circuits = _circuits(pipe, device)

    def seconds(n, s, k):
        return plan_run(pipe, device, n, s, k, circuits)["qpu_seconds_estimate"]

    def search(lo, hi, fits):  # the largest x in [lo, hi] with fits(x) (fits is monotone); 0 if none
        best = 0
        while lo <= hi:
            mid = (lo + hi) // 2
            if fits(mid):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best

    return {
        "num": search(1, num, lambda n: seconds(n, steps, shots) <= budget),
        "steps": search(1, steps, lambda s: seconds(num, s, shots) <= budget) if sampler == "ddim" else None,
        "shots": search(2, shots, lambda k: seconds(num, steps, k) <= budget),
    }


def check_budget(pipe, device: IBMDevice, num: int, steps: int, budget: float | None, sampler: str) -> dict:
    """The run's plan, with the instance's usage on a live account (asked once, not in the budget search);
    with ``budget`` (QPU seconds), :class:`~nisqdiff.errors.UsageError` when the estimate exceeds it,
    naming the largest --num, --steps and --shots that fit."""
    if budget is not None and not budget > 0:
        raise UsageError(f"--budget must be a positive number of QPU seconds, got {budget}")
    plan = plan_run(pipe, device, num, steps)
    if not device.local and (usage := runtime.instance_usage(device.service)):
        plan["instance_usage"] = usage
    if budget is not None and plan["qpu_seconds_estimate"] > budget:
        fit = {k: v for k, v in largest_fitting(pipe, device, num, steps, device.shots, budget, sampler).items() if v}
        what = f"largest that fit (each alone): {', '.join(f'--{k} {v}' for k, v in fit.items())}" if fit else (
            "no smaller --num, --steps or --shots alone fits; raise the budget or lower several")
        raise UsageError(f"estimated QPU time {plan['qpu_seconds_estimate']:.0f} s exceeds --budget {budget:g} s; {what}")
    return plan


def describe_plan(plan: dict, arch: str, num: int, sampler: str) -> list[str]:
    """The dry run's report, line by line."""
    mode = " (local testing mode: the runtime ignores resilience options there)" if plan["local_testing_mode"] else ""
    cost = plan["mitigation"]
    lines = [
        f"dry run: {arch} on {plan['backend']}{mode}, {plan['primitive']}, {num} images, {sampler} {plan['steps']} steps, "
        f"{plan['shots']} shots",
        f"calibration: {plan['calibration']}",
        f"circuit stages per denoising step: {plan['circuit_stages_per_step']}, circuits: {len(plan['circuits'])}",
    ]
    for i, c in enumerate(plan["circuits"]):
        lines.append(f"  circuit {i}: {c['ansatz']}, {c['two_qubit_gates']} two-qubit gates, depth {c['depth']}, "
                     f"{c['seconds_per_shot'] * 1e6:.1f} us per shot with repetition delay")  # fmt: skip
    if len(cost["noise_factors"]) > 1 or cost["randomizations"] > 1:
        lines.append(f"mitigation: noise factors {cost['noise_factors']}, {cost['randomizations']} randomizations x "
                     f"{cost['shots_per_randomization']} shots")  # fmt: skip
    if plan["m3_calibrations"]:
        lines.append(f"M3 readout calibration: {plan['m3_calibrations']} calibration(s), {plan['m3_shots']:,} shots (in the estimate)")
    lines.append(f"jobs: {plan['jobs']:,} ({plan['execution_mode']}), PUBs: {plan['pubs']:,}, "
                 f"circuit executions: {plan['circuit_executions']:,}, total shots: {plan['total_shots']:,}")  # fmt: skip
    lines.append(f"estimated QPU time: {plan['qpu_seconds_estimate'] / 60:.1f} min (shots x (noise factor x scheduled "
                 f"duration + rep_delay {plan['rep_delay'] * 1e6:g} us); per-job overhead and queueing not included)")  # fmt: skip
    limit = plan["plan_limit_seconds"]
    if limit is not None:
        share = plan["qpu_seconds_estimate"] / limit
        lines.append(f"{plan['plan']} plan: {limit / 60:.0f} min of QPU time per rolling 28 days; this run needs {share:.1f}x that")
    if "instance_usage" in plan and plan["instance_usage"].get("usage_remaining_seconds") is not None:
        lines.append(f"instance: {plan['instance_usage']['usage_remaining_seconds']:.0f} s of QPU time left")
    return lines
