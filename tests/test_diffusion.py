import math

import torch

import pytest

from nisqdiff.diffusion import SCHEDULES, GaussianDiffusion, ScheduleConfig, cosine_betas, schedule_betas


def test_cosine_schedule():
    betas = cosine_betas(1000)
    assert betas.shape == (1000,) and betas.min() > 0 and betas.max() <= 0.999
    d = GaussianDiffusion()
    assert torch.all(d.alphas_bar[1:] < d.alphas_bar[:-1])
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert math.isclose(d.alphas_bar[499].item(), f(500) / f(0), rel_tol=1e-9)
    snr = d.alphas_bar / (1 - d.alphas_bar)
    assert torch.allclose(d.p2_weight, 1 / (1 + snr))


def _oracle(d, x0_true):
    """A perfect epsilon-predictor for a data distribution concentrated on x0_true."""

    def model(x, t):
        ab = d.alphas_bar[t].float().reshape(-1, 1, 1, 1)
        return (x - ab.sqrt() * x0_true) / (1 - ab).sqrt()

    return model


def test_samplers_recover_the_data_point_with_a_perfect_model():
    d = GaussianDiffusion()
    x0 = torch.rand(1, 1, 28, 28) * 1.6 - 0.8
    for eta in (0.0, 1.0):
        out = d.ddim_sample(_oracle(d, x0), (3, 1, 28, 28), torch.Generator().manual_seed(1), steps=20, eta=eta)
        assert torch.allclose(out, x0.expand(3, -1, -1, -1), atol=1e-4)
    out = d.ddpm_sample(_oracle(d, x0), (2, 1, 28, 28), torch.Generator().manual_seed(1))
    assert torch.allclose(out, x0.expand(2, -1, -1, -1), atol=1e-3)


def test_loss_is_p2_weighted_mse():
    d = GaussianDiffusion()
    x0 = torch.zeros(4, 1, 28, 28)
    loss = d.loss(lambda x, t: torch.zeros_like(x), x0, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    t = torch.randint(0, 1000, (4,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    expected = (noise.square().flatten(1).mean(1) * d.p2_weight[t].float()).mean()
    assert torch.allclose(loss, expected)


def test_ddim_timesteps():
    d = GaussianDiffusion()
    ts = d.ddim_timesteps(50)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50 and ts == sorted(ts, reverse=True)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("timesteps", [1000, 40])
def test_every_schedule_runs_from_signal_to_noise(name, timesteps):
    config = ScheduleConfig(schedule=name, timesteps=timesteps)
    d = GaussianDiffusion(config)
    ab = d.alphas_bar
    assert ab.shape == (timesteps,) and torch.all(ab[1:] < ab[:-1])  # monotone
    assert ab[0] > 0.99 and ab[-1] < 1e-4  # starts near the data, ends near pure noise
    assert torch.all(d.betas > 0) and torch.all(d.betas <= 0.999)


def test_named_schedules_follow_their_papers():
    linear = schedule_betas(ScheduleConfig(schedule="linear"))
    assert torch.allclose(linear, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))  # Ho et al. 2020
    assert torch.allclose(schedule_betas(ScheduleConfig(schedule="linear", timesteps=100))[[0, -1]],
                          torch.tensor([1e-3, 0.2], dtype=torch.float64))  # scaled by 1000 / T
    sig = GaussianDiffusion(ScheduleConfig(schedule="sigmoid")).alphas_bar
    v = lambda t: 1 / (1 + math.exp(-(6 * t - 3)))  # noqa: E731  Chen 2023, start -3, end 3, tau 1
    assert math.isclose(sig[499].item(), (v(1) - v(0.5)) / (v(1) - v(0)), rel_tol=1e-9)
    plain = GaussianDiffusion(ScheduleConfig(schedule="shifted-cosine")).alphas_bar
    shifted = GaussianDiffusion(ScheduleConfig(schedule="shifted-cosine", logsnr_shift=1.65)).alphas_bar
    # at t = 1/2 (index 499) the log-SNR is 0 unshifted: alphas_bar 1/2, or sigmoid(1.65) shifted (both
    # divided by alphas_bar at t = 0, where the log-SNR is clipped to 20)
    assert math.isclose(plain[499].item(), 0.5, rel_tol=1e-6)
    assert math.isclose(shifted[499].item(), 1 / (1 + math.exp(-1.65)), rel_tol=1e-6)
    assert torch.all(shifted[:-1] > plain[:-1])  # a positive shift keeps more signal everywhere
