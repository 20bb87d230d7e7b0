"""The same results on CUDA as on the CPU (skipped where torch sees no GPU; `scripts/gpu_check.sh` runs them)."""

import math

import pytest
import torch

from nisqdiff.circuits import ANSATZE, get_spec, simulate

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("ansatz", [*ANSATZE, "ring12x3"])
def test_circuits_on_cuda_match_the_cpu_values_and_gradients(ansatz):
    spec = get_spec(ansatz)
    x = torch.rand(1, 64, spec.n_qubits, dtype=torch.float64) * 2 * math.pi
    w = torch.rand(1, spec.n_weights, dtype=torch.float64)
    out = {}
    for dev in ("cpu", "cuda"):
        xd, wd = x.to(dev).float().requires_grad_(), w.to(dev).float().requires_grad_()
        z = simulate(ansatz, xd, wd)
        z.square().sum().backward()
        out[dev] = (z.detach().cpu(), xd.grad.cpu(), wd.grad.cpu())
    for a, b in zip(out["cpu"], out["cuda"]):
        assert torch.allclose(a, b, atol=1e-5), ansatz


def test_exact_emulator_on_cuda_matches_the_cpu():
    from nisqdiff.circuits.heisenberg import compile_exact
    from nisqdiff.devices import EmulatorDevice
    from nisqdiff.devices.emulator import emulator_program

    w = torch.rand(84, dtype=torch.float64)
    x = torch.rand(32, 12, dtype=torch.float64) * 2 * math.pi
    dev = EmulatorDevice("fake_sherbrooke", shots=None, method="exact")
    prog = emulator_program(dev.transpiled("hqconv", w), dev.snapshot, 1.0)
    cpu, cuda = compile_exact(prog).expval(x), compile_exact(prog, "cuda").expval(x.cuda()).cpu()
    assert torch.allclose(cpu, cuda, atol=1e-5)


@pytest.mark.parametrize("arch", ["1hqconv", "quanv", "qbottleneck"])
def test_models_on_cuda_match_the_cpu(arch):
    from nisqdiff.models import build_model

    model = build_model(arch)
    x, t = torch.randn(4, *model.image_shape), torch.tensor([1, 200, 600, 999])
    cpu = model(x, t)
    cuda = model.cuda()(x.cuda(), t.cuda()).cpu()
    assert torch.allclose(cpu, cuda, atol=1e-4)
