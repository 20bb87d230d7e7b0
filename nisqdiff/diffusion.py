"""Gaussian diffusion (SPEC.md "Diffusion process"): cosine schedule, P2-weighted loss, DDPM and DDIM.

Follows Ho et al. 2020 (DDPM), Nichol & Dhariwal 2021 (cosine betas, s = 0.008, clipped to 0.999),
Choi et al. 2022 (P2 weighting, k = 1, gamma = 1) and Song et al. 2021 (DDIM). The network predicts
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
SCHEDULES = ("cosine",)

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cosine_betas(timesteps: int = T_DEFAULT, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule: betas (T,) float64 from alphas_bar(t) = cos^2(((t/T + s)/(1 + s)) * pi/2)."""
    t = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alphas_bar = f / f[0]
    return (1 - alphas_bar[1:] / alphas_bar[:-1]).clamp(0, 0.999)


@dataclass(frozen=True)
class ScheduleConfig:
    """What defines a diffusion schedule, saved with every model and rebuilt from it: ``timesteps`` T,
    ``schedule`` name ("cosine", Nichol & Dhariwal 2021) with its offset ``cosine_s``, and the P2 loss
    weighting's ``p2_k`` and ``p2_gamma`` (Choi et al. 2022). The defaults are the paper's."""

    timesteps: int = T_DEFAULT
    schedule: str = "cosine"
    cosine_s: float = 0.008
    p2_k: float = 1.0
    p2_gamma: float = 1.0

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
        config = ScheduleConfig(**{**(config or ScheduleConfig()).to_dict(), **overrides})
        if config.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule '{config.schedule}'; valid: {', '.join(SCHEDULES)}")
        if config.timesteps < 1:
            raise UsageError(f"timesteps must be at least 1, got {config.timesteps}")
        self.config = config
        timesteps, p2_k, p2_gamma = config.timesteps, config.p2_k, config.p2_gamma
        self.timesteps = timesteps
        self.betas = cosine_betas(timesteps, config.cosine_s)
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

    def loss(self, model: EpsModel, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """P2-weighted epsilon MSE: per-sample mean squared error times p2_weight[t], batch-averaged.

        x0 (N, C, H, W) in [-1, 1]; t uniform in [0, T) and the noise drawn from ``generator``.
        """
        n = x0.shape[0]
        t = torch.randint(0, self.timesteps, (n,), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
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
        the posterior mean plus posterior-variance noise (none at t = 0). Returns (shape) in [-1, 1]."""
        x = torch.randn(shape, generator=generator).to(torch_device)
        for i in reversed(range(self.timesteps)):
            t = torch.full((shape[0],), i, dtype=torch.long, device=torch_device)
            x0 = self.predict_x0(x, t, model(x, t)).clamp(-1, 1)
            mean = self._at(self.posterior_mean_coef1, t, x) * x0 + self._at(self.posterior_mean_coef2, t, x) * x
            noise = torch.randn(shape, generator=generator).to(torch_device)
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
        DDPM-like. x0 is clipped to [-1, 1] and epsilon re-derived from it. Returns (shape) in [-1, 1]."""
        x = torch.randn(shape, generator=generator).to(torch_device)
        ts = self.ddim_timesteps(steps)
        for i, step in enumerate(ts):
            t = torch.full((shape[0],), step, dtype=torch.long, device=torch_device)
            x0 = self.predict_x0(x, t, model(x, t)).clamp(-1, 1)
            ab = self._at(self.alphas_bar, t, x)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            ab_next = self._at(self.alphas_bar, torch.full_like(t, ts[i + 1]), x) if i + 1 < len(ts) else torch.ones_like(ab)
            sigma = eta * ((1 - ab_next) / (1 - ab) * (1 - ab / ab_next)).clamp(min=0).sqrt()
            noise = torch.randn(shape, generator=generator).to(torch_device)
            x = ab_next.sqrt() * x0 + (1 - ab_next - sigma**2).clamp(min=0).sqrt() * eps + sigma * noise
            if progress:
                progress()
        return x.clamp(-1, 1)
