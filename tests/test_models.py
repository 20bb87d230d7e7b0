import torch
from _helpers import literal_linear_attention

from nisqdiff.models import ARCHS, UNet, arch_summary, build_model, count_parameters

EXPECTED = {
    "classical": 483_321,
    "1hqconv": 475_329,
    "7hqconv": 440_985,
    "fullhqconv": 429_993,
    "1fqconv": 475_281,
    "7fqconv": 440_649,
    "fullfqconv": 429_369,
    "quanv": 473_817,
    "bottleneck": 89_579,  # Chen et al.'s family: no printed counts; the classical twin's core has 156 (> 72)
    "qbottleneck": 89_495,
    "bottleneck-const": 88_931,  # no layer in the gate: a trained constant per channel
}


def test_parameter_counts_match_spec():
    assert set(ARCHS) == set(EXPECTED)
    for name, count in EXPECTED.items():
        assert count_parameters(build_model(name)) == count, name


def test_circuit_counts():
    assert arch_summary("1hqconv")["circuits"] == 4
    assert arch_summary("7fqconv")["circuits"] == 28
    full = arch_summary("fullhqconv")
    assert full["circuits"] == 56 and full["qubits"] == [4, 12]  # 2 blocks x 2 convs x (13 + 1 Basic)
    assert arch_summary("quanv")["circuits"] == 8


def test_forward_shapes_and_gradients_reach_circuits():
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 900])
    for name in ("classical", "1hqconv", "quanv", "fullfqconv"):
        model = UNet(name)
        y = model(x, t)
        assert y.shape == (2, 1, 28, 28)
        y.square().mean().backward()
        for circ in model.circuits():
            assert circ.weights.grad is not None and circ.weights.grad.abs().sum() > 0, name


def test_executor_is_the_only_path_to_circuits():
    from _helpers import Recording

    from nisqdiff.circuits import CircuitExecutor

    for arch, images in (("1hqconv", 3), ("quanv", 2)):
        model, recording = UNet(arch), Recording(zeros=True)
        assert isinstance(recording, CircuitExecutor)
        model.set_executor(recording)
        model(torch.randn(images, 1, 28, 28), torch.arange(images))
        inventory = model.circuit_inventory()
        # one executor call per stage of the inventory, with inputs_per_image patches of every image
        stages = {c["stage"]: c for c in inventory}
        assert [(c["ansatz"], (1, images * c["inputs_per_image"], 12), (1, 84)) for c in stages.values()] == recording.calls
    assert [c["inputs_per_image"] for c in UNet("quanv").circuit_inventory()] == [49] * 4 + [1] * 4
    assert len(UNet("fullhqconv").circuit_inventory()) == 56 and len(UNet("classical").circuit_inventory()) == 0


def test_parameter_order_of_saved_checkpoints_is_kept():
    """Optimiser states in checkpoints are keyed by parameter position: the order must not move."""
    from nisqdiff.models.layers import ResBlock

    names = [n for n, _ in ResBlock(10, 20, 40).named_parameters()]
    assert names == ["mlp.1.weight", "mlp.1.bias", "proj1.weight", "proj1.bias", "norm1.weight", "norm1.bias",
                     "proj2.weight", "proj2.bias", "norm2.weight", "norm2.bias", "res_conv.weight", "res_conv.bias"]  # fmt: skip
    hybrid = [n for n, _ in UNet("1hqconv").mid_block1.named_parameters()]
    assert hybrid[:6] == ["mlp.1.weight", "mlp.1.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
    assert hybrid[6:] == ["hconv1.circuits.weights", "hconv1.conv.weight", "hconv1.conv.bias", "hconv2.circuits.weights",
                          "hconv2.conv.weight", "hconv2.conv.bias"]  # fmt: skip


def test_reassociated_attention_equals_the_literal_one():
    """The fast LinearAttention (no v, output conv folded in, chunks of images, channels-last input) is the
    same function as the literal one, values and gradients, to 1e-5 in float64."""
    from nisqdiff.models.layers import LinearAttention

    torch.manual_seed(0)
    for c, size, n, positions in ((10, 7, 3, 3136), (20, 5, 37, 400)):  # 37 images in chunks of 16, 16, 5
        m = LinearAttention(c).double()
        m.chunk_positions = positions
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(n, c, size, size, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
            fast, ref = m(x), literal_linear_attention(m, x)
            assert torch.allclose(fast, ref, atol=1e-10, rtol=1e-5)
            params = [x, *m.parameters()]
            g_fast = torch.autograd.grad(fast.square().sum(), params)
            g_ref = torch.autograd.grad(ref.square().sum(), params)
            for a, b in zip(g_fast, g_ref):
                assert torch.allclose(a, b, atol=1e-8, rtol=1e-5)


def test_channels_last_inside_the_unet_returns_nchw():
    """The U-Net computes in channels-last but hands back a contiguous NCHW epsilon equal to a float64 run."""
    torch.manual_seed(0)
    model = build_model("classical")
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        eps = model(x, t)
        eps64 = model.double()(x.double(), t)
    assert eps.is_contiguous() and eps.shape == x.shape
    assert torch.allclose(eps.double(), eps64, atol=1e-4)


def test_group_norm_keeps_channels_last_and_equals_torch():
    from nisqdiff.models.layers import GroupNorm

    torch.manual_seed(0)
    ours, ref = GroupNorm(10, 20), torch.nn.GroupNorm(10, 20)
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 20, 5, 5)
    for layout in (torch.contiguous_format, torch.channels_last):
        y = ours(x.contiguous(memory_format=layout))
        assert y.is_contiguous(memory_format=layout) and torch.allclose(y, ref(x), atol=1e-6)
