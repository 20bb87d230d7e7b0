"""The compiled chain kernel (nisqdiff/circuits/native.py) against PennyLane and the torch chain path."""

import shutil
import warnings

import pytest
import torch

from nisqdiff.circuits import chain, native, probabilities, simulate
from nisqdiff.circuits.reference import pennylane_qnode

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler here: the chain runs in torch")


def _inputs(c, b, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(c, b, 12, generator=g) * 6 - 3, torch.rand(c, 84, generator=g)


@needs_cc
def test_kernel_matches_pennylane():
    x, w = _inputs(1, 21)  # 21 inputs: full vectors (8 or 16 lanes) and a partial one
    assert native.available() and chain._native_fits("hqconv", x, w)
    with torch.no_grad():
        ours = simulate("hqconv", x, w)
    ref = pennylane_qnode("hqconv")(x[0].double(), w[0].double())
    assert ours.shape == (1, 21, 12) and ours.dtype == torch.float32
    assert torch.allclose(ours[0].double(), ref, atol=1e-5)


@needs_cc
def test_kernel_matches_the_torch_path_for_several_circuits_and_threads():
    x, w = _inputs(3, 21, seed=1)
    with torch.no_grad():
        torch_path = chain._simulate_chain("hqconv", x.double(), w.double())
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one = simulate("hqconv", x, w)
            torch.set_num_threads(2)
            two = simulate("hqconv", x, w)
        finally:
            torch.set_num_threads(threads)
    assert torch.equal(one, two)  # every vector of inputs is computed alone: no reduction order to change
    assert (one.double() - torch_path).abs().max() < 2e-6


@needs_cc
def test_kernel_gradients_match_pennylane_and_the_torch_path():
    x, w = _inputs(2, 11, seed=2)
    x.requires_grad_(), w.requires_grad_()
    probe = torch.randn(2, 11, 12, generator=torch.Generator().manual_seed(3))
    assert chain._native_fits("hqconv", x, w)
    gx, gw = torch.autograd.grad((simulate("hqconv", x, w) * probe).sum(), (x, w))
    xd, wd = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    rx, rw = torch.autograd.grad((chain._simulate_chain("hqconv", xd, wd) * probe.double()).sum(), (xd, wd))
    assert (gx.double() - rx).abs().max() < 1e-5
    assert ((gw.double() - rw).abs() / (1 + rw.abs())).max() < 1e-5  # 22 inputs' float32 sums per weight
    ref = pennylane_qnode("hqconv")(xd[1], wd[1])
    px, pw = torch.autograd.grad((ref * probe[1].double()).sum(), (xd, wd))
    assert (gx[1].double() - px[1]).abs().max() < 1e-5 and ((gw[1].double() - pw[1]).abs() / (1 + pw[1].abs())).max() < 1e-5


@needs_cc
def test_kernel_gradients_are_the_same_on_every_call():
    """The weights' gradient sums over inputs split between threads (here one thread's run of vectors ends
    inside the second of three circuits); the sums are added in a fixed order, and each circuit gets its own."""
    x, w = _inputs(3, 200, seed=4)
    w.requires_grad_()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        grads = [torch.autograd.grad(simulate("hqconv", x, w).sum(), w)[0] for _ in range(3)]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(grads[0], g) for g in grads[1:])
    wd = w.detach().double().requires_grad_()
    ref = torch.autograd.grad(chain._simulate_chain("hqconv", x.double(), wd).sum(), wd)[0]
    assert ((grads[0].double() - ref).abs() / (1 + ref.abs())).max() < 1e-4  # 200 inputs' float32 sums per weight


@needs_cc
def test_kernel_probabilities_match_the_statevector():
    """The shots device's Born probabilities from the kernel: the float64 statevector's, qubit 0 most significant."""
    x, w = _inputs(2, 19, seed=5)
    assert chain._native_fits("hqconv", x, w)
    p = probabilities("hqconv", x, w)
    ref = probabilities("hqconv", x.double(), w.double(), method="statevector")
    assert p.shape == (2, 19, 4096) and p.dtype == torch.float32
    assert (p.double() - ref).abs().max() < 1e-6 and (p.sum(-1) - 1).abs().max() < 1e-5
    with chain.torch_only():
        assert (probabilities("hqconv", x, w).double() - ref).abs().max() < 1e-6


def test_float64_and_torch_only_stay_in_torch():
    x, w = _inputs(1, 5)
    assert not chain._native_fits("hqconv", x.double(), w.double())
    with chain.torch_only():
        assert not chain._native_fits("hqconv", x, w)
    assert chain._native_fits("hqconv", x, w) == native.available()


@pytest.mark.parametrize("case", ["switched off", "no compiler", "damaged library"])
def test_without_the_kernel_the_chain_runs_in_torch(monkeypatch, tmp_path, case):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no library built before
    if case == "switched off":
        monkeypatch.setenv("NISQDIFF_NATIVE", "0")
    elif case == "no compiler":
        monkeypatch.setenv("CC", "false")
    else:
        native.library_path().parent.mkdir(parents=True)
        native.library_path().write_bytes(b"not a shared library")
    native._library.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not native.available()
        assert len(caught) == (0 if case == "switched off" else 1)  # a kernel that cannot be had says so once
        x, w = _inputs(1, 9)
        with torch.no_grad():
            assert torch.allclose(simulate("hqconv", x, w).double(), chain._simulate_chain("hqconv", x.double(), w.double()),
                                  atol=1e-6)  # fmt: skip
    finally:
        native._library.cache_clear()


def test_op_patterns_hold_every_entry_that_any_weights_make_nonzero():
    """The kernel multiplies only the entries of chain.op_patterns: outside them an op is zero for all weights."""
    patterns = chain.op_patterns("hqconv")
    assert patterns.sum((1, 2)).tolist() == [81, 81, 81, 32, 32] * 2 + [81, 81, 81]  # channel blocks, controlled rotations
    w = (torch.rand(5, 84, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) * 2 - 0.5).requires_grad_()
    ops = chain.chain_program("hqconv", w, defer_final=True)[1]
    outside = torch.stack([m for *_, m in ops], 1)[:, ~patterns]  # (5, entries outside every pattern)
    assert outside.numel() > 0 and torch.count_nonzero(outside) == 0
    (gw,) = torch.autograd.grad(outside.abs().sum() + outside.real.sum() + outside.imag.sum(), w, allow_unused=True)
    assert gw is None or torch.count_nonzero(gw) == 0
