"""Gaussian diffusion (SPEC.md "Diffusion process"): noise schedules, P2-weighted loss, DDPM and DDIM.

Follows Ho et al. 2020 (DDPM, linear betas), Nichol & Dhariwal 2021 (cosine betas, s = 0.008, clipped to
0.999; the paper's schedule and the default), Chen 2023 ("On the importance of noise scheduling for
diffusion models": sigmoid schedule), Hoogeboom et al. 2023 ("simple diffusion": the cosine log-SNR
shifted for the image size), Choi et al. 2022 (P2 weighting, k = 1, gamma = 1) and Song et al. 2021 (DDIM). The network predicts
epsilon; images live in [-1, 1]. Every random draw of the samplers comes from the ``generator``
passed in, in a fixed order, so the same seed gives the same initial and per-step noise whatever
executes the model's circuits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from .errors import UsageError

T_DEFAULT = 1000
MAX_TIMESTEPS = 100_000
SCHEDULES = ("cosine", "linear", "sigmoid", "shifted-cosine")
MAX_BETA = 0.999

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cosine_betas(timesteps: int = T_DEFAULT, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule: betas (T,) float64 from alphas_bar(t) = cos^2(((t/T + s)/(1 + s)) * pi/2)."""
    t = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return _betas(f / f[0])


def _betas(alphas_bar: torch.Tensor) -> torch.Tensor:
    """betas (T,) of a continuous alphas_bar sampled at t = 0, 1/T, ..., 1 ((T + 1,), starting at 1),
    clipped to [0, MAX_BETA] as Nichol & Dhariwal do (the last step reaches almost pure noise)."""
    return (1 - alphas_bar[1:] / alphas_bar[:-1].clamp_min(1e-300)).clamp(0, MAX_BETA)


def schedule_betas(config: ScheduleConfig) -> torch.Tensor:
    """betas (T,) float64 of a :class:`ScheduleConfig`.

    ``cosine``: :func:`cosine_betas` with ``cosine_s``. ``linear``: Ho et al.'s betas from
    ``linear_start`` to ``linear_end`` (1e-4 to 0.02 at T = 1000), scaled by 1000 / T as in
    improved-diffusion so that any T covers the same noise range. ``sigmoid``: Chen 2023,
    alphas_bar(t) = (v(1) - v(t)) / (v(1) - v(0)) with v(t) = sigmoid((t (end - start) + start) / tau),
    ``sigmoid_start`` -3, ``sigmoid_end`` 3, ``sigmoid_tau`` 1. ``shifted-cosine``: Hoogeboom et al. 2023,
    log-SNR(t) = -2 log tan(pi t / 2) + ``logsnr_shift`` (clipped to [-20, 20]) and
    alphas_bar = sigmoid(log-SNR); a positive shift keeps more signal at every t (what small images
    want: Hoogeboom et al. use 2 log(64 / d) for d-pixel images, +1.65 for 28 x 28).
    """
    T = config.timesteps
    t = torch.linspace(0, 1, T + 1, dtype=torch.float64)
    if config.schedule == "cosine":
        return cosine_betas(T, config.cosine_s)
    if config.schedule == "linear":
        scale = 1000 / T
        return torch.linspace(scale * config.linear_start, scale * config.linear_end, T, dtype=torch.float64).clamp(0, MAX_BETA)
    if config.schedule == "sigmoid":
        start, end, tau = config.sigmoid_start, config.sigmoid_end, config.sigmoid_tau
        v = torch.sigmoid((t * (end - start) + start) / tau)
        return _betas((v[-1] - v) / (v[-1] - v[0]))
    logsnr = (-2 * torch.log(torch.tan(math.pi * t / 2)) + config.logsnr_shift).clamp(-20, 20)
    ab = torch.sigmoid(logsnr)
    return _betas(ab / ab[0])


@dataclass(frozen=True)
class ScheduleConfig:
    """What defines a diffusion schedule, saved with every model and rebuilt from it: ``timesteps`` T,
    the ``schedule`` name (:data:`SCHEDULES`) with its parameters (see :func:`schedule_betas`), and the
    P2 loss weighting's ``p2_k`` and ``p2_gamma`` (Choi et al. 2022). The defaults are the paper's
    (cosine, T = 1000). :meth:`check` raises :class:`~nisqdiff.errors.UsageError` for an unknown
    schedule, T outside [1, 100000] or a non-finite parameter."""

    timesteps: int = T_DEFAULT
    schedule: str = "cosine"
    cosine_s: float = 0.008
    linear_start: float = 1e-4
    linear_end: float = 0.02
    sigmoid_start: float = -3.0
    sigmoid_end: float = 3.0
    sigmoid_tau: float = 1.0
    logsnr_shift: float = 0.0
    p2_k: float = 1.0
    p2_gamma: float = 1.0

    def check(self) -> ScheduleConfig:
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule '{self.schedule}'; valid: {', '.join(SCHEDULES)}")
        if not (isinstance(self.timesteps, int) and 1 <= self.timesteps <= MAX_TIMESTEPS):
            raise UsageError(f"--timesteps must be an integer in [1, {MAX_TIMESTEPS}], got {self.timesteps}")
        values = {k: v for k, v in self.to_dict().items() if k not in ("timesteps", "schedule")}
        bad = [k for k, v in values.items() if not (isinstance(v, (int, float)) and math.isfinite(v))]
        if bad:
            raise UsageError(f"schedule parameter(s) {', '.join(bad)} must be finite numbers")
        if not 0 < self.linear_start < self.linear_end or self.sigmoid_end <= self.sigmoid_start or self.sigmoid_tau <= 0:
            raise UsageError("linear schedule needs 0 < linear_start < linear_end; sigmoid needs start < end and tau > 0")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> ScheduleConfig:
        """The schedule of a saved configuration; ``None`` (checkpoints written before schedules were
        saved, which all trained with the defaults) gives the defaults."""
        return cls(**(values or {}))


class GaussianDiffusion:
    """Schedule tensors and the forward/reverse processes for an epsilon-predicting model.

    Built from a :class:`ScheduleConfig` (``config``; keywords override its fields). Attributes (all
    (T,) float64 on CPU, indexed by integer step t in [0, T)): ``betas``, ``alphas_bar``,
    ``alphas_bar_prev``, ``posterior_variance``, ``posterior_mean_coef1/2`` and ``p2_weight`` =
    (k + alphas_bar / (1 - alphas_bar))^-gamma. :class:`~nisqdiff.errors.UsageError` for an unknown
    schedule or T < 1.
    """

    def __init__(self, config: ScheduleConfig | None = None, **overrides):
        config = ScheduleConfig(**{**(config or ScheduleConfig()).to_dict(), **overrides}).check()
        self.config = config
        timesteps, p2_k, p2_gamma = config.timesteps, config.p2_k, config.p2_gamma
        self.timesteps = timesteps
        self.betas = schedule_betas(config)
        alphas = 1 - self.betas
        self.alphas_bar = torch.cumprod(alphas, 0)
        self.alphas_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_bar[:-1]])
        self.posterior_variance = self.betas * (1 - self.alphas_bar_prev) / (1 - self.alphas_bar)
        self.posterior_log_variance = torch.log(self.posterior_variance.clamp(min=1e-20))
        self.posterior_mean_coef1 = self.betas * self.alphas_bar_prev.sqrt() / (1 - self.alphas_bar)
        self.posterior_mean_coef2 = (1 - self.alphas_bar_prev) * alphas.sqrt() / (1 - self.alphas_bar)
        self.p2_weight = (p2_k + self.alphas_bar / (1 - self.alphas_bar)) ** -p2_gamma

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.to(like.device)[t].to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alphas_bar_t) x0 + sqrt(1 - alphas_bar_t) noise; shapes (N, ...), t (N,)."""
        ab = self._at(self.alphas_bar, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def loss(self, model: EpsModel, x0: torch.Tensor, generator: torch.Generator | None = None, part: slice | None = None,
             noise_source=None) -> torch.Tensor:  # fmt: skip
        """P2-weighted epsilon MSE: per-sample mean squared error times p2_weight[t], batch-averaged.

        x0 (N, C, H, W) in [-1, 1]; t uniform in [0, T) and the noise drawn from ``generator`` for all
        N (the noise from ``noise_source.randn`` instead where given: a quantum pool,
        :class:`nisqdiff.qrng.PoolNoise`). ``part``: compute the loss of these rows only, with the t and
        noise they get in the whole batch (one rank's share of a distributed batch).
        """
        n = x0.shape[0]
        t = torch.randint(0, self.timesteps, (n,), generator=generator).to(x0.device)
        noise = (noise_source.randn(x0.shape) if noise_source is not None else torch.randn(x0.shape, generator=generator)).to(x0.device)
        if part is not None:
            x0, t, noise = x0[part], t[part], noise[part]
        pred = model(self.q_sample(x0, t, noise), t)
        per_sample = (pred.float() - noise).square().flatten(1).mean(1)
        return (per_sample * self._at(self.p2_weight, t, per_sample).flatten()).mean()

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        ab = self._at(self.alphas_bar, t, x_t)
        return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()

    @torch.no_grad()
    def ddpm_sample(
        self, model: EpsModel, shape: tuple[int, ...], generator: torch.Generator, torch_device="cpu", progress=None
    ) -> torch.Tensor:
        """Ancestral sampling over all T steps: x0 predicted from epsilon and clipped to [-1, 1], then
        the posterior mean plus posterior-variance noise (none at t = 0). Returns (shape) in [-1, 1].
        ``generator``: a torch generator or a noise source with ``randn(shape)`` (a quantum pool, which is
        not drawn from where the noise is unused)."""
        x = randn(shape, generator).to(torch_device)
        for i in reversed(range(self.timesteps)):
            t = torch.full((shape[0],), i, dtype=torch.long, device=torch_device)
            x0 = self.predict_x0(x, t, model(x, t)).clamp(-1, 1)
            mean = self._at(self.posterior_mean_coef1, t, x) * x0 + self._at(self.posterior_mean_coef2, t, x) * x
            if i == 0 and not isinstance(generator, torch.Generator):
                x = mean
            else:  # (a torch generator draws the unused last noise too, as it always has)
                noise = randn(shape, generator).to(torch_device)
                x = mean + (0.5 * self._at(self.posterior_log_variance, t, x)).exp() * noise if i > 0 else mean
            if progress:
                progress()
        return x.clamp(-1, 1)

    def ddim_timesteps(self, steps: int) -> list[int]:
        """The ``steps`` integer timesteps DDIM visits, descending from T-1 to 0 (evenly spaced)."""
        if not 1 <= steps <= self.timesteps:
            raise UsageError(f"DDIM steps must be in [1, {self.timesteps}], got {steps}")
        ts = torch.linspace(self.timesteps - 1, 0, steps).round().long().tolist()
        return list(dict.fromkeys(ts))

    @torch.no_grad()
    def ddim_sample(
        self,
        model: EpsModel,
        shape: tuple[int, ...],
        generator: torch.Generator,
        steps: int = 50,
        eta: float = 0.0,
        torch_device="cpu",
        progress=None,
    ) -> torch.Tensor:
        """DDIM (Song et al. 2021) with ``steps`` model calls; ``eta`` = 0 is deterministic, 1 is
        DDPM-like. x0 is clipped to [-1, 1] and epsilon re-derived from it. Returns (shape) in [-1, 1].
        ``generator`` as in :meth:`ddpm_sample` (a pool is drawn from for the step noise only if eta > 0)."""
        x = randn(shape, generator).to(torch_device)
        ts = self.ddim_timesteps(steps)
        for i, step in enumerate(ts):
            t = torch.full((shape[0],), step, dtype=torch.long, device=torch_device)
            x0 = self.predict_x0(x, t, model(x, t)).clamp(-1, 1)
            ab = self._at(self.alphas_bar, t, x)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            ab_next = self._at(self.alphas_bar, torch.full_like(t, ts[i + 1]), x) if i + 1 < len(ts) else torch.ones_like(ab)
            sigma = eta * ((1 - ab_next) / (1 - ab) * (1 - ab / ab_next)).clamp(min=0).sqrt()
            pool_unused = eta == 0 and not isinstance(generator, torch.Generator)
            noise = torch.zeros(shape, device=torch_device) if pool_unused else randn(shape, generator).to(torch_device)
            x = ab_next.sqrt() * x0 + (1 - ab_next - sigma**2).clamp(min=0).sqrt() * eps + sigma * noise
            if progress:
                progress()
        return x.clamp(-1, 1)


def randn(shape, generator) -> torch.Tensor:
    """N(0, 1) of ``shape`` from a torch generator (or torch's default, None) or from a noise source with
    ``randn(shape)`` (:class:`nisqdiff.qrng.PoolNoise`)."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator)
    return generator.randn(shape)


def noise_draws(sampler: str, steps: int, eta: float, timesteps: int) -> int:
    """Gaussian images a pool gives each sampled image: the initial noise, plus every step's noise for DDPM
    (T - 1) and stochastic DDIM (``steps``)."""
    if sampler == "ddpm":
        return timesteps
    return 1 + (steps if eta > 0 else 0)
