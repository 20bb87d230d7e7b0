"""The compiled kernels of the U-Net (nisqdiff/models/fused.py) against the literal formulas in float64."""

import copy
import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F
from _helpers import literal_linear_attention

from nisqdiff.models import build_model, fused
from nisqdiff.models.layers import GroupNorm, LinearAttention

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler here: the U-Net samples in torch")


def _perturbed(module, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return module


@needs_cc
@pytest.mark.parametrize("c,size,n", [(10, 28, 3), (20, 7, 5), (40, 2, 17), (64, 5, 2), (3, 3, 2)])
def test_attention_kernel_matches_the_literal_attention(c, size, n):
    """Values and gradients (input and every parameter) for every U-Net attention width (10 to 40) and the
    limits; positions not a multiple of the kernel's blocks of 16 (49, 4, 25, 9); NCHW and channels-last."""
    m = _perturbed(LinearAttention(c), c)
    m64 = copy.deepcopy(m).double()
    for layout in (torch.contiguous_format, torch.channels_last):
        x = (torch.randn(n, c, size, size) * 2).contiguous(memory_format=layout).requires_grad_()
        assert fused.fits(x)
        ours = m(x)
        x64 = x.detach().double().requires_grad_()
        ref = literal_linear_attention(m64, x64)
        assert ours.shape == x.shape and ours.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(ours.double(), ref, atol=1e-5, rtol=1e-5), (ours.double() - ref).abs().max()
        gy = torch.randn_like(ref)
        g_ours = torch.autograd.grad((ours * gy.float()).sum(), [x, *m.parameters()])
        g_ref = torch.autograd.grad((ref * gy).sum(), [x64, *m64.parameters()])
        for (name, _), a, b in zip([("x", None), *m.named_parameters()], g_ours, g_ref):
            assert torch.allclose(a.double(), b, atol=1e-4 * b.abs().max().item() + 1e-6), (name, (a.double() - b).abs().max())
        with torch.no_grad():  # sampling: the same values without the statistics the backward keeps
            assert torch.equal(m(x), ours.detach())


@needs_cc
@pytest.mark.parametrize("with_time", [True, False])
def test_group_norm_silu_kernel_matches_torch(with_time):
    g = _perturbed(GroupNorm(10, 20), 1)
    x = (torch.randn(3, 20, 14, 14) * 3 + 1).contiguous(memory_format=torch.channels_last)
    scale, shift = (torch.randn(3, 20, 1, 1), torch.randn(3, 20, 1, 1)) if with_time else (None, None)
    with torch.no_grad():
        assert fused.fits(x, grad=False)
        ours = g.silu(x, scale, shift)
        h = F.group_norm(x.double(), 10, g.weight.double(), g.bias.double(), g.eps)
        ref = F.silu(h if scale is None else h * (1 + scale.double()) + shift.double())
    assert torch.allclose(ours.double(), ref, atol=1e-5, rtol=1e-5), (ours.double() - ref).abs().max()


@needs_cc
@pytest.mark.parametrize("arch", ["classical", "1hqconv"])
def test_sampling_forward_with_the_kernels_equals_the_torch_path(arch):
    m = build_model(arch).eval()
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        ours = m(x, t)
        with fused.torch_only():
            ref = m(x, t)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-4), (ours - ref).abs().max()


@needs_cc
def test_training_step_with_the_kernels_equals_the_torch_path():
    """A U-Net training step's loss and gradients with the attention kernel and without (fp32), and the
    same under bf16 autocast, where the kernel's attention runs in float32."""
    m = build_model("classical")
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([5, 300, 900])

    def step(amp):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = (m(x, t).float() - x).square().mean()
        return loss, torch.autograd.grad(loss, list(m.parameters()))

    loss, grads = step(False)
    with fused.torch_only():
        ref_loss, ref_grads = step(False)
        amp_loss = step(True)[0]
    assert torch.allclose(loss, ref_loss, rtol=1e-5)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-4 * b.abs().max().item() + 1e-7)
    assert abs(step(True)[0].item() - amp_loss.item()) < 0.01 * amp_loss.item()  # bf16 rounding elsewhere


def test_the_normalisation_kernel_serves_sampling_only():
    """It has no backward: with autograd on, under autocast, in float64 or bf16, torch runs it."""
    x = torch.randn(2, 10, 4, 4)
    assert not fused.fits(x, grad=False)  # grad enabled
    with torch.no_grad():
        assert not fused.fits(x.double(), grad=False) and not fused.fits(x.bfloat16(), grad=False)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not fused.fits(x, grad=False)
        with fused.torch_only():
            assert not fused.fits(x) and not fused.fits(x, grad=False)


@pytest.mark.parametrize("case", ["switched off", "no compiler"])
def test_without_the_kernels_sampling_runs_in_torch(monkeypatch, tmp_path, case):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no library built before
    monkeypatch.setenv(*(("NISQDIFF_NATIVE", "0") if case == "switched off" else ("CC", "false")))
    fused._library.cache_clear()
    try:
        x = torch.randn(2, 10, 4, 4)
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            assert not fused.fits(x)
            y = LinearAttention(10)(x)
        assert len(caught) == (0 if case == "switched off" else 1) and y.shape == x.shape
        if caught:
            assert "compiled unet kernels cannot be used" in str(caught[0].message)
    finally:
        fused._library.cache_clear()
