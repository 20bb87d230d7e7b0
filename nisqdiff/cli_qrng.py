"""``nisqdiff qrng``: a pool of quantum random bits for the diffusion noise (:mod:`nisqdiff.qrng`)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from .cli_errors import raise_usage


def qrng(
    bits: int = typer.Option(..., help="bits the pool must hold after extraction (32 per Gaussian)"),
    out: Path = typer.Option(..., help="pool file to write, e.g. pools/sherbrooke.npz"),
    device: str = typer.Option("aer-noisy", help="a device that returns measured bits: aer, aer-noisy, ibm, pennylane "
                               "(qml.sample), the emulator (bits from its exact noisy marginals; fast) or shots (ideal) "
                               "(or a profile of those)"),  # fmt: skip
    calibration: Optional[str] = typer.Option(None, help="aer-noisy, emulator: calibration snapshot [default: the profile's]"),
    noise_scale: Optional[float] = typer.Option(None, help="aer-noisy, emulator: multiplies every error rate"),
    backend: Optional[str] = typer.Option(None, help="ibm: backend name, or fake_* for local testing mode"),
    shots: int = typer.Option(65536, help="shots per circuit execution"),
    device_seed: Optional[int] = typer.Option(None, help="seed of a simulator's shot sampling [default: the profile's]"),
    extractor: str = typer.Option("von-neumann", help="von-neumann (unbiased output from biased, independent bits) or none"),
    dry_run: bool = typer.Option(False, help="print the shots and, on ibm, the QPU time the pool and one training run need"),
    train_steps: int = typer.Option(2000, help="--dry-run: steps of the training run to size the pool for"),
    train_batch: int = typer.Option(16, help="--dry-run: batch size of that training run"),
    overwrite: bool = typer.Option(False, help="replace a pool already at --out (its ledger of reservations is removed)"),
):
    """Measure H on 12 qubits on a device, debias each qubit's bits, and write a pool of random bits with its
    provenance; `train` and `sample` read N(0, 1) noise from it with --noise-source pool:POOL."""
    from .devices import IBMDevice, load_profile, make_device
    from .qrng import EXTRACTORS, N_QUBITS, WORD, bias_table, extract, hadamard_circuit, measure_bits, write_pool

    if bits < 1:
        raise_usage(f"--bits must be at least 1, got {bits}")
    if extractor not in EXTRACTORS:
        raise_usage(f"unknown extractor '{extractor}'; valid: {', '.join(EXTRACTORS)}")
    if out.exists() and not overwrite and not dry_run:
        raise_usage(f"{out} exists; pass --overwrite to replace it (its reservations are forgotten) or choose another --out")
    if out.parent.exists() and not out.parent.is_dir():
        raise_usage(f"{out.parent} is not a folder")
    kind = load_profile(device)["kind"]
    if kind not in ("aer", "aer-noisy", "ibm", "emulator", "shots", "pennylane"):
        raise_usage(f"qrng needs a device that returns measured bits (kind aer, aer-noisy, ibm, pennylane) or the emulator or "
                    f"shots device; '{device}' is {kind}")  # fmt: skip
    extra = {"method": "exact"} if kind == "emulator" else {}
    qdev = make_device(device, shots=shots, seed=device_seed, calibration=calibration, noise_scale=noise_scale, backend=backend,
                       **extra)  # fmt: skip
    yield_per_raw = 0.25 if extractor == "von-neumann" else 1.0  # von Neumann at p = 1/2; less for biased bits
    raw_needed = math.ceil(bits / yield_per_raw)
    if dry_run:
        shots_needed = math.ceil(raw_needed / N_QUBITS)
        train_bits = train_steps * train_batch * 784 * WORD
        typer.echo(f"{bits:,} bits: about {raw_needed:,} raw bits, {shots_needed:,} shots of the 12-qubit Hadamard circuit")
        if isinstance(qdev, IBMDevice):
            per_shot = qdev.circuit_seconds(qdev._transpile(hadamard_circuit()))
            typer.echo(f"QPU time: about {shots_needed * per_shot / 60:.1f} min ({per_shot * 1e6:.1f} us per shot with rep_delay)")
            train_minutes = math.ceil(train_bits / yield_per_raw / N_QUBITS) * per_shot / 60
            typer.echo(f"one training run of {train_steps:,} steps at batch {train_batch} needs {train_bits:,} bits: "
                       f"about {train_minutes:.0f} min of QPU time")  # fmt: skip
        else:
            typer.echo(f"one training run of {train_steps:,} steps at batch {train_batch} needs {train_bits:,} bits")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    parts, counts, ran = [], np.zeros((N_QUBITS, 4), dtype=np.int64), {"executions": 0, "job_ids": []}
    while sum(len(p) for p in parts) < bits:  # measure what is still missing, at the yield seen so far
        have = sum(len(p) for p in parts)
        seen_yield = counts[:, 2].sum() / counts[:, 0].sum() if counts.any() else yield_per_raw
        raw, info = measure_bits(qdev, min(math.ceil((bits - have) / max(seen_yield, 0.05) * 1.05), 1 << 28))  # bounded memory
        ran["executions"] += info["executions"]
        ran["job_ids"] += info["job_ids"]
        extracted, c = extract(raw, extractor)
        parts.append(extracted)
        counts += c
    table = bias_table(counts)
    provenance = {"device": qdev.settings(), "circuit": "H on 12 qubits, measured", "extractor": extractor,
                  "raw_bits": int(counts[:, 0].sum()), "shots_per_execution": shots, **ran, "per_qubit": table,
                  "command": " ".join(["nisqdiff", *sys.argv[1:]])}  # fmt: skip
    if overwrite:
        Path(str(out) + ".ledger.json").unlink(missing_ok=True)  # a new pool: no run holds a range of it
    write_pool(out, np.concatenate(parts)[:bits], provenance)
    typer.echo(json.dumps({"pool": str(out), "bits": bits, "raw_bits": provenance["raw_bits"], "extractor": extractor,
                           "yield": round(float(counts[:, 2].sum() / counts[:, 0].sum()), 4), "executions": ran["executions"],
                           "min_entropy_raw": round(min(r["min_entropy_raw"] for r in table), 4)}))  # fmt: skip
