"""The ``nisqdiff calibration`` and ``nisqdiff devices`` command groups: calibration snapshots
(list, show, pull), device profiles and what a model's circuits become on a device (inspect)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_errors import friendly_errors, raise_usage

CHECKPOINT_HELP = "training checkpoint (its EMA weights), pretrained folder (`nisqdiff export`) or zoo model (`nisqdiff models`)"


calibration_app = typer.Typer(no_args_is_help=True, help="Calibration snapshots of IBM devices.")


@calibration_app.command("list")
@friendly_errors
def calibration_list():
    """The built-in and pulled snapshots: name, qubits, basis gates, calibration date, origin."""
    from .calibration import list_calibrations, load_calibration

    for name in list_calibrations():
        snap = load_calibration(name)
        typer.echo(
            f"{name:<18} {snap['num_qubits']:>4} qubits  {','.join(snap['basis_gates']):<14} {snap['calibration_date']}  {snap['origin']}"
        )


@calibration_app.command("show")
@friendly_errors
def calibration_show(name: str = typer.Argument(..., help="snapshot name or file")):
    """Summary of one snapshot: medians of T1, T2, readout and gate errors."""
    import statistics

    from .calibration import coupling_map, load_calibration

    snap = load_calibration(name)
    q = snap["qubits"]
    med = statistics.median
    typer.echo(
        f"{snap['name']}: {snap['num_qubits']} qubits, {len(coupling_map(snap))} coupled pairs, calibrated {snap['calibration_date']}"
    )
    typer.echo(f"origin: {snap['origin']}")
    typer.echo(
        f"median T1 {med(x['t1'] for x in q if x['t1']) * 1e6:.1f} us, T2 {med(x['t2'] for x in q if x['t2']) * 1e6:.1f} us"
    )
    typer.echo(
        f"median readout error P(1|0) {med(x['prob_meas1_prep0'] for x in q):.4f}, P(0|1) {med(x['prob_meas0_prep1'] for x in q):.4f}"
    )
    for gate in snap["basis_gates"]:
        rows = [g for g in snap["gates"] if g["name"] == gate]
        typer.echo(
            f"{gate:<4} median error {med(g['error'] for g in rows):.2e}, duration {med(g['duration'] for g in rows) * 1e9:.0f} ns, {len(rows)} instances"
        )


@calibration_app.command("pull")
@friendly_errors
def calibration_pull(
    backend: str = typer.Option(..., help="IBM backend of your account (or fake_* to export a fake backend offline)"),
    out: Optional[Path] = typer.Option(None, help="folder [default: the user's calibration folder]"),
    name: Optional[str] = typer.Option(None, help="snapshot name [default: <backend>-<calibration date>]"),
):
    """Save a fresh calibration snapshot of a backend; `--calibration NAME` then finds it."""
    from .calibration import load_calibration, pull_calibration

    path = pull_calibration(backend, out, name)
    snap = load_calibration(str(path))
    typer.echo(f"{path}: {snap['num_qubits']} qubits, {','.join(snap['basis_gates'])}, calibrated {snap['calibration_date']}")


devices_app = typer.Typer(invoke_without_command=True, help="Devices the circuits can run on.")


@devices_app.callback()
def devices(ctx: typer.Context):
    """List the device profiles (devices/*.toml): name, kind, what each needs and is."""
    from .devices import list_profiles
    from .devices.profiles import needs

    if ctx.invoked_subcommand is None:
        for name, p in list_profiles().items():
            typer.echo(f"{name:<17} {p['kind']:<10} {p['description']}")
            typer.echo(f"{'':<17} {'':<10} needs: {needs(p)}")


@devices_app.command("inspect")
@friendly_errors
def devices_inspect(
    checkpoint: Path = typer.Option(..., help="model whose circuits to transpile: " + CHECKPOINT_HELP),
    device: str = typer.Option("aer-noisy", help="device profile of kind aer, aer-noisy, emulator or ibm"),
    calibration: Optional[str] = typer.Option(None, help="calibration snapshot (aer-noisy) [default: the profile's]"),
    backend: Optional[str] = typer.Option(None, help="IBM backend (ibm), e.g. fake_sherbrooke"),
):
    """Per circuit: physical qubits, two-qubit gates and depth, estimated success probability; and the
    same circuits on generic 12-qubit line and ring maps and all-to-all (CX basis) for comparison."""
    from qiskit import transpile
    from qiskit.transpiler import CouplingMap

    from .calibration import circuit_stats, snapshot_from_backend
    from .circuits.qiskit_build import bind_weights
    from .devices import load_profile, make_device
    from .pipeline import DiffusionPipeline

    kind = load_profile(device)["kind"]
    if kind not in ("aer", "aer-noisy", "emulator", "ibm"):
        raise_usage(f"devices inspect needs a device of kind aer, aer-noisy, emulator or ibm; '{device}' is {kind}")
    qdev = make_device(device, shots=16, calibration=calibration, backend=backend)
    snapshot = getattr(qdev, "snapshot", None)
    if kind == "ibm":
        snapshot = snapshot_from_backend(qdev.backend, "backend properties")
    inventory = DiffusionPipeline.from_pretrained(checkpoint).unet.circuit_inventory()
    typer.echo(f"{'circuit':<34} {'2q gates':>8} {'2q depth':>8} {'depth':>6} {'P(success)':>10}  physical qubits")
    seen = {}
    for c in inventory:
        st = circuit_stats(qdev.transpiled(c["ansatz"], c["weights"]), snapshot)
        p = f"{st['success_probability']:.3f}" if "success_probability" in st else "-"
        typer.echo(f"{c['name']:<34} {st['two_qubit_gates']:>8} {st['two_qubit_depth']:>8} {st['depth']:>6} {p:>10}  "
                   f"{st.get('physical_qubits', '-')}")  # fmt: skip
        seen.setdefault(c["ansatz"], c["weights"])
    basis = ["cx", "rz", "sx", "x"]
    for ansatz, weights in seen.items():
        circuit = bind_weights(ansatz, weights.numpy())
        n = circuit.num_qubits
        for label, cmap in (("all-to-all", None), ("line", CouplingMap.from_line(n)), ("ring", CouplingMap.from_ring(n))):
            t = transpile(circuit, basis_gates=basis, coupling_map=cmap, optimization_level=3, seed_transpiler=0)
            st = circuit_stats(t)
            typer.echo(
                f"{ansatz} on {label} ({n} qubits, CX basis): {st['two_qubit_gates']} CX, two-qubit depth {st['two_qubit_depth']}"
            )


@calibration_app.command("diff")
@friendly_errors
def calibration_diff(
    a: str = typer.Argument(..., help="earlier snapshot: name or file (a device run's calibration.json)"),
    b: str = typer.Argument(..., help="later snapshot: name or file"),
    qubits: Optional[str] = typer.Option(None, help="physical qubits a circuit uses, e.g. 0,1,2 (`devices inspect`) [default: all]"),
):
    """What changed between two snapshots: median and worst T1, T2, readout and gate errors."""
    from .calibration import diff_snapshots, load_calibration

    chosen = None
    if qubits is not None:
        try:
            chosen = [int(q) for q in qubits.split(",") if q.strip()]
        except ValueError:
            raise_usage(f"--qubits takes comma-separated qubit indices, e.g. 0,1,2; got {qubits!r}")
    sa, sb = load_calibration(a), load_calibration(b)
    rows = diff_snapshots(sa, sb, chosen)
    typer.echo(f"A: {sa['name']} calibrated {sa['calibration_date']}; B: {sb['name']} calibrated {sb['calibration_date']}")
    typer.echo(f"{'quantity':<15} {'median A':>10} {'median B':>10} {'change':>8}   {'worst A':>10} {'worst B':>10} {'change':>8}")
    for r in rows:
        def change(x, y):
            return f"{(y - x) / x:+.0%}" if x else "-"

        typer.echo(f"{r['quantity']:<15} {r['median_a']:>10.4g} {r['median_b']:>10.4g} {change(r['median_a'], r['median_b']):>8}   "
                   f"{r['worst_a']:>10.4g} {r['worst_b']:>10.4g} {change(r['worst_a'], r['worst_b']):>8}")  # fmt: skip
