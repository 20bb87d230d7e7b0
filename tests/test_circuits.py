import pytest
import torch

from nisqdiff.circuits import ANSATZE, expval, get_spec, probabilities, simulate
from nisqdiff.circuits.ansatz import gates
from nisqdiff.circuits.reference import pennylane_qnode
from nisqdiff.circuits.simulator import fuse


ALL = [*ANSATZE, "ring4x2", "ring12x3"]  # the ring ansatz of the bottleneck U-Net at two sizes


def _random(ansatz, batch, dtype):
    spec = get_spec(ansatz)
    x = (torch.rand(batch, spec.n_qubits, dtype=dtype) * 2 * torch.pi - torch.pi).requires_grad_()
    w = torch.rand(spec.n_weights, dtype=dtype).requires_grad_()
    return x, w


@pytest.mark.parametrize("ansatz", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_pennylane_values_and_gradients(ansatz, dtype):
    x, w = _random(ansatz, 6, dtype)
    probe = torch.randn(6, get_spec(ansatz).n_qubits, dtype=torch.float64)
    ours = expval(ansatz, x, w)
    (ours.double() * probe).sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    xr, wr = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    ref = pennylane_qnode(ansatz)(xr, wr)
    (ref * probe).sum().backward()
    assert ours.shape == ref.shape == (6, get_spec(ansatz).n_qubits)
    assert torch.allclose(ours.double(), ref, atol=1e-5)
    assert torch.allclose(gx.double(), xr.grad, atol=1e-5)
    assert torch.allclose(gw.double(), wr.grad, atol=1e-5)


@pytest.mark.parametrize("ansatz", ["hqconv", "fqconv", "basic"])
def test_statevector_and_chain_methods_agree(ansatz):
    spec = ANSATZE[ansatz]
    x = (torch.rand(2, 7, spec.n_qubits, dtype=torch.float64) * 6 - 3).requires_grad_()
    w = torch.rand(2, spec.n_weights, dtype=torch.float64).requires_grad_()
    a = simulate(ansatz, x, w, method="statevector")
    if ansatz != "hqconv":
        with pytest.raises(ValueError, match="statevector"):
            simulate(ansatz, x, w, method="chain")
        return
    b = simulate(ansatz, x, w, method="chain")
    assert torch.allclose(a, b, atol=1e-12)
    ga = torch.autograd.grad(a.sin().sum(), (x, w))
    gb = torch.autograd.grad(b.sin().sum(), (x, w))
    assert all(torch.allclose(u, v, atol=1e-12) for u, v in zip(ga, gb))


@pytest.mark.parametrize("ansatz", ["hqconv", "fqconv"])
def test_probabilities_are_the_born_rule_of_the_simulated_state(ansatz):
    spec = ANSATZE[ansatz]
    x = torch.rand(2, 3, spec.n_qubits, dtype=torch.float64) * 6 - 3
    w = torch.rand(2, spec.n_weights, dtype=torch.float64)
    p = probabilities(ansatz, x, w)  # the chain contraction for hqconv
    assert p.shape == (2, 3, 2**spec.n_qubits) and torch.allclose(p.sum(-1), torch.ones(2, 3, dtype=p.dtype))
    assert torch.allclose(p, probabilities(ansatz, x, w, method="statevector"), atol=1e-14)
    bits = (torch.arange(2**spec.n_qubits)[:, None] >> torch.arange(spec.n_qubits - 1, -1, -1)) & 1
    assert torch.allclose(p @ (1 - 2 * bits).double(), simulate(ansatz, x, w), atol=1e-12)  # qubit 0 most significant


def test_batched_circuits_equal_one_at_a_time():
    x = torch.rand(3, 5, 12, dtype=torch.float64) * 3
    w = torch.rand(3, 84, dtype=torch.float64)
    together = simulate("hqconv", x, w)
    for c in range(3):
        assert torch.allclose(together[c], expval("hqconv", x[c], w[c]), atol=1e-12)


def test_chain_in_batch_chunks_equals_one_pass(monkeypatch):
    """The chain method over chunks of the batch (quanv's 6,272 inputs) gives the one-pass values and gradients."""
    from nisqdiff.circuits import chain

    x = (torch.rand(2, 11, 12, dtype=torch.float64) * 3).requires_grad_()
    w = torch.rand(2, 84, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(2, 11, 12, dtype=torch.float64)
    results = []
    for chunk in (10_000, 6):  # 22 inputs in ceil(22 / 6) = 4 chunks of at most 3 inputs per circuit, the last short
        monkeypatch.setattr(chain, "CHUNK", chunk)
        z = simulate("hqconv", x, w, method="chain")
        results.append((z, *torch.autograd.grad((z * probe).sum(), (x, w))))
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-12)


def test_weight_counts_and_gate_structure():
    assert {a: s.n_weights for a, s in ANSATZE.items()} == {"hqconv": 84, "fqconv": 72, "basic": 16}
    used = sorted(g.weight for g in gates("hqconv"))
    assert used == list(range(84))  # every HQConv weight drives exactly one gate (A blocks included)
    assert len(gates("hqconv")) == 84 and len(gates("fqconv")) == 72


def test_fusion_blocks():
    hq = fuse("hqconv")
    assert [sorted(b.qubits) for b in hq[:4]] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [0, 4, 8]]
    assert len(hq) == 12
    assert sorted(sorted(b.qubits) for b in fuse("fqconv")) == [[i, 4 + i, 8 + i] for i in range(4)]


def test_bad_input():
    with pytest.raises(ValueError, match="valid: hqconv, fqconv, basic"):
        expval("nope", torch.zeros(1, 12), torch.zeros(84))
    with pytest.raises(ValueError, match=r"\(C, B, 12\)"):
        simulate("hqconv", torch.zeros(1, 2, 11), torch.zeros(1, 84))
    with pytest.raises(ValueError, match="weights"):
        simulate("hqconv", torch.zeros(1, 2, 12), torch.zeros(1, 72))
    with pytest.raises(ValueError, match="valid: auto, statevector, chain"):
        simulate("hqconv", torch.zeros(1, 2, 12), torch.zeros(1, 84), method="fast")
