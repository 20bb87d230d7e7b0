"""Chen et al.'s bottleneck U-Nets: the ring circuit (gate list, devices), the names, the models, RGB."""

import json
import math

import numpy as np
import pennylane as qml
import pytest
import torch
from _helpers import Recording
from typer.testing import CliRunner

from nisqdiff.circuits import ExactSimulator, ExpvalResult, get_spec, simulate
from nisqdiff.cli import app
from nisqdiff.errors import UsageError
from nisqdiff.models import build_model, count_parameters, get_arch


def test_the_ring_gate_list_is_the_circuit_written_layer_by_layer():
    """The gate list reorders each layer (qubit q's rotations just before CNOT(q-1, q)); written the
    plain way, all rotations and then the CNOT ring, PennyLane gets the same <Z>."""
    n, layers = 5, 2
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="torch")
    def plain(x, w):
        for q in range(n):
            qml.RX(x[..., q], wires=q)
        for layer in range(layers):
            for q in range(n):
                qml.RY(w[layer * 2 * n + 2 * q], wires=q)
                qml.RZ(w[layer * 2 * n + 2 * q + 1], wires=q)
            for q in range(n):
                qml.CNOT(wires=[q, (q + 1) % n])
        return [qml.expval(qml.PauliZ(q)) for q in range(n)]

    x = torch.rand(4, n, dtype=torch.float64) * 2 * math.pi
    w = torch.rand(2 * n * layers, dtype=torch.float64) * 2 * math.pi
    ours = simulate(f"ring{n}x{layers}", x.unsqueeze(0), w.unsqueeze(0))[0]
    assert torch.allclose(ours, torch.stack(list(plain(x, w)), -1), atol=1e-10)


def test_names_carry_the_circuit_options():
    cfg = get_arch("qbottleneck-q16-l2")
    assert (cfg.ansatz, cfg.qubits, cfg.channels, cfg.family) == ("ring16x2", 16, 1, "bottleneck")
    assert get_arch("bottleneck-rgb").channels == 3 and get_arch("bottleneck").ansatz is None
    assert get_spec("ring16x2").n_weights == 64
    assert get_arch("bottleneck-const-q16").core == "none" and get_arch("qbottleneck").core == "circuit"
    for bad, match in (("qbottleneck-q12", "is written 'qbottleneck'"), ("bottleneck-l2", "qbottleneck only"),
                       ("qbottleneck-const", "bottleneck only -const"), ("bottleneck-q16-const", "unknown architecture"),
                       ("qbottleneck-q40", "qubits in 2-20"), ("bottlenek", "qbottleneck -l<layers>")):  # fmt: skip
        with pytest.raises(UsageError, match=match):
            get_arch(bad)
    with pytest.raises(ValueError, match="ring<n>x<layers>"):
        get_spec("ring30x1")


def test_models_run_their_circuit_once_per_forward_and_train_it():
    model, rec = build_model("qbottleneck"), Recording()
    model.set_executor(rec)
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([1, 500, 999])
    y = model(x, t)
    assert y.shape == (3, 1, 28, 28) and rec.calls == [("ring12x3", (1, 3, 12), (1, 72))]
    y.square().mean().backward()
    assert model.circuits()[0].weights.grad.abs().sum() > 0
    assert [c["inputs_per_image"] for c in model.circuit_inventory()] == [1]
    twin = build_model("bottleneck")
    assert twin.circuits() == [] and count_parameters(twin.gate.core) == 156 > get_spec("ring12x3").n_weights
    assert {k for k in twin.state_dict() if not k.startswith("gate.core")} == {
        k for k in model.state_dict() if not k.startswith("gate.core")}  # fmt: skip
    const = build_model("bottleneck-const")
    assert torch.equal(const.gate(torch.ones(2, 40, 7, 7))[:, :, 0, 0], (1 + const.gate.up.bias).expand(2, 40))
    rgb = build_model("qbottleneck-q16-rgb")
    assert rgb(torch.randn(2, 3, 28, 28), t[:2]).shape == (2, 3, 28, 28) and rgb.image_shape == (3, 28, 28)


def test_circuit_outputs_of_zero_leave_the_bottleneck_as_the_gate_sets_it():
    """The depolarized device's zeros reach the gate: (1 + Linear(0)) scales the channels."""
    model = build_model("qbottleneck")

    class Zeros(ExactSimulator):
        def run(self, ansatz, inputs, weights):
            return ExpvalResult(torch.zeros_like(inputs), torch.zeros_like(inputs))

    model.set_executor(Zeros())
    h = torch.randn(2, 40, 7, 7)
    expect = h * (1 + model.gate.up.bias)[None, :, None, None]
    assert torch.allclose(model.gate(h), expect, atol=1e-6)


def test_the_exact_emulator_runs_the_ring_as_aer_does():
    from nisqdiff.circuits.heisenberg import compile_exact
    from nisqdiff.devices import EmulatorDevice
    from nisqdiff.devices.emulator import aer_exact_expval, emulator_program

    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(16, generator=gen, dtype=torch.float64) * 2 * math.pi
    inputs = torch.rand(2, 4, generator=gen, dtype=torch.float64) * 2 * math.pi
    dev = EmulatorDevice("fake_sherbrooke", shots=None, method="exact")
    circuit = dev.transpiled("ring4x2", weights)
    prog = emulator_program(circuit, dev.snapshot, 1.0)
    ref = aer_exact_expval(circuit, dev.snapshot, 1.0, inputs)
    assert (compile_exact(prog).expval(inputs) - ref).abs().max() < 1e-5


def _colour_npz(path, n=12):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8) for s in ("train", "val", "test")}
    arrays |= {f"{s}_labels": (np.arange(n) % 2).reshape(n, 1).astype(np.uint8) for s in ("train", "val", "test")}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def test_rgb_training_and_sampling_from_the_cli(tmp_path, monkeypatch):
    from PIL import Image

    from nisqdiff import medmnist

    _colour_npz(tmp_path / "medmnist" / "dermamnist.npz")
    monkeypatch.setitem(medmnist.SETS, "dermamnist", (medmnist.md5(tmp_path / "medmnist" / "dermamnist.npz"), 3, False))
    run = CliRunner().invoke
    base = ["train", "--dataset", "dermamnist", "--data-dir", str(tmp_path), "--per-class", "3", "--batch-size", "6",
            "--max-steps", "2", "--grid-images", "4"]  # fmt: skip
    bad = run(app, [*base, "--arch", "qbottleneck", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "use --arch qbottleneck-rgb" in bad.output and not (tmp_path / "bad").exists()
    ok = run(app, [*base, "--arch", "qbottleneck-rgb", "--out", str(tmp_path / "run")])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "run" / "training_images.json").read_text())["classes"] is None
    grid = next((tmp_path / "run").glob("samples_step*.png"))
    assert np.asarray(Image.open(grid)).shape[-1] == 3
    sampled = run(app, ["sample", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--num", "2", "--steps", "2",
                        "--device", "shots", "--shots", "64", "--out", str(tmp_path / "samples")])  # fmt: skip
    assert sampled.exit_code == 0, sampled.output
    assert torch.load(tmp_path / "samples" / "samples.pt")["images"].shape == (2, 3, 28, 28)
    assert np.asarray(Image.open(tmp_path / "samples" / "samples.png")).shape[-1] == 3
