"""The diffusion pipeline: a trained U-Net, its schedule and a circuit executor, and the only way to sample.

As diffusers' pipelines do, :class:`DiffusionPipeline` holds everything sampling needs: the U-Net (EMA
weights), the :class:`~nisqdiff.diffusion.GaussianDiffusion` schedule rebuilt from the saved
configuration, and the :class:`~nisqdiff.circuits.executor.CircuitExecutor` its circuits run on (the
exact simulator by default, any device of :func:`nisqdiff.devices.make_device` otherwise).
``nisqdiff sample``, ``evaluate --checkpoint``, ``report`` and IBM runs all sample through it.
:meth:`DiffusionPipeline.from_pretrained` loads a training checkpoint or a pretrained folder;
:meth:`DiffusionPipeline.save_pretrained` writes a pretrained folder.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

from .circuits import CircuitExecutor, ExactSimulator, ExecutionLog, merge_summaries
from .cost import CostWatch, watch_device
from .diffusion import GaussianDiffusion, ScheduleConfig
from .errors import UsageError
from .models import UNet

SAMPLERS = ("ddpm", "ddim")
PRECISIONS = ("fp32", "bf16")
MAX_SEED = 2**40  # seed * 1_000_003 + batch must fit a 64-bit generator seed


def check_torch_device(name: str) -> str:
    """``name`` if torch knows it and it is there (cpu, cuda, cuda:N, ...), else
    :class:`~nisqdiff.errors.UsageError` saying which exist."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown --torch-device '{name}'; valid: cpu, cuda, cuda:N (mps where torch has it)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--torch-device {name}: torch sees no CUDA device here; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--torch-device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return name


def native_bf16(name: str) -> bool:
    """True where torch device ``name`` computes bf16 matmuls and convolutions natively: a CUDA device
    with bf16 (``torch.cuda.is_bf16_supported``), a CPU with AVX512-BF16 or AMX tiles. Elsewhere
    torch emulates bf16 and autocast makes a training step slower, not faster (a classical step
    5.5 s in bf16 against 1.8 s in fp32 on an AVX2-only EPYC; docs/performance.md)."""
    device = torch.device(name)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = [getattr(torch.cpu, f, None) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


class DiffusionPipeline:
    """``unet`` (an epsilon-predicting :class:`~nisqdiff.models.UNet`), ``schedule`` (a
    :class:`~nisqdiff.diffusion.ScheduleConfig`, default the paper's) and ``executor`` (default the
    exact simulator); ``info`` describes where the model came from (see
    :func:`nisqdiff.checkpoints.load_model`). ``precision`` "fp32" (default) or "bf16": the U-Net's
    classical layers run under bf16 autocast (circuits stay fp32; the sampler's arithmetic too)."""

    precision = "fp32"

    def __init__(self, unet: UNet, schedule: ScheduleConfig | None = None, executor: CircuitExecutor | None = None,
                 info: dict | None = None):  # fmt: skip
        self.unet = unet.eval()
        self.schedule = schedule or ScheduleConfig()
        self.scheduler = GaussianDiffusion(self.schedule)
        self.info = info or {"arch": unet.arch}
        self.noise = None  # (pool, first Gaussian, Gaussians per batch) of a quantum noise pool, or None
        self.set_executor(executor or ExactSimulator())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, 28, 28) of the images the model makes (a grey U-Net's unless it says otherwise)."""
        return getattr(self.unet, "image_shape", (1, 28, 28))

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, expect_arch: str | None = None,
                        executor: CircuitExecutor | None = None) -> DiffusionPipeline:  # fmt: skip
        """The pipeline of a training checkpoint (its EMA weights) or a pretrained folder.
        :class:`~nisqdiff.errors.CheckpointError` for anything unreadable or of another architecture."""
        from .checkpoints import load_model

        unet, schedule, info = load_model(source, expect_arch)
        return cls(unet, schedule, executor, info)

    def save_pretrained(self, directory: str | os.PathLike, **provenance) -> Path:
        """Write the pretrained folder (``config.json`` and ``model.safetensors``, see
        :func:`nisqdiff.checkpoints.save_pretrained`); ``provenance`` adds to the recorded dataset,
        step, source and training command."""
        from .checkpoints import save_pretrained

        training = self.info.get("training", {})
        record = {"dataset": self.info.get("dataset"), "step": self.info.get("step"), "source": self.info.get("source"),
                  "source_sha256": self.info.get("sha256"), "command": self.info.get("command"), **provenance}  # fmt: skip
        return save_pretrained(directory, self.unet, self.schedule, training, record)

    @property
    def arch(self) -> str:
        return self.unet.arch

    def set_executor(self, executor: CircuitExecutor) -> None:
        """Run every circuit of the U-Net on ``executor`` from now on."""
        self.executor = executor
        self.unet.set_executor(executor)

    def use_noise_pool(self, pool, run: str, num: int, sampler: str, steps: int, eta: float, batch_size: int) -> dict:
        """Draw the sampling noise of ``num`` images from a quantum noise pool (:class:`nisqdiff.qrng.Pool`)
        instead of torch's generator: ``run``'s range of it is reserved (batch b gets its own part, so a
        batch's noise does not depend on which batches run). Returns what is recorded with the images.
        :class:`~nisqdiff.qrng.PoolError` when the pool has too little left."""
        from .diffusion import noise_draws

        self.check(num, sampler, steps, eta, batch_size)
        per_batch = min(batch_size, num) * math.prod(self.image_shape) * noise_draws(sampler, steps, eta, self.scheduler.timesteps)
        start = pool.reserve(run, per_batch * math.ceil(num / batch_size))
        self.noise = (pool, start, per_batch)
        return {"pool": str(pool.path), "pool_device": pool.provenance.get("device"), "first_gaussian": start,
                "gaussians": per_batch * math.ceil(num / batch_size)}  # fmt: skip

    def denoiser(self, torch_device: str = "cpu"):
        """The epsilon model as sampling calls it: (x, t) -> epsilon, the U-Net (eval) on ``torch_device``,
        under bf16 autocast with an fp32 result if ``precision`` is "bf16"."""
        unet = self.unet.to(torch_device).eval()
        return _Autocast(unet, torch.device(torch_device).type) if self.precision == "bf16" else unet

    def steps_per_batch(self, sampler: str, steps: int) -> int:
        """Model calls per batch: T for DDPM, ``steps`` for DDIM."""
        return self.scheduler.timesteps if sampler == "ddpm" else steps

    def check(self, num: int, sampler: str = "ddim", steps: int = 50, eta: float = 0.0, batch_size: int = 256,
              seed: int = 0) -> None:  # fmt: skip
        """Check sampling options before any work: a known sampler, ``num`` and ``batch_size`` >= 1, DDIM
        ``steps`` in [1, T], ``eta`` finite in [0, 1], ``seed`` in [0, 2^40).
        :class:`~nisqdiff.errors.UsageError` naming the option."""
        if sampler not in SAMPLERS:
            raise UsageError(f"unknown sampler '{sampler}'; valid: {', '.join(SAMPLERS)}")
        if num <= 0 or batch_size <= 0:
            raise UsageError(f"--num and --batch-size must be positive, got {num} and {batch_size}")
        if sampler == "ddim":
            self.scheduler.ddim_timesteps(steps)
        if not (math.isfinite(eta) and 0 <= eta <= 1):
            raise UsageError(f"--eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like), got {eta}")
        if not 0 <= seed < MAX_SEED:
            raise UsageError(f"--seed must be in [0, 2^40), got {seed}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown --precision '{self.precision}'; valid: {', '.join(PRECISIONS)}")

    def __call__(self, num: int, sampler: str = "ddim", steps: int = 50, eta: float = 0.0, batch_size: int = 256,
                 seed: int = 0, torch_device: str = "cpu", progress=None, batches: list[int] | None = None) -> torch.Tensor:  # fmt: skip
        """Generate ``num`` images (num, *image_shape) in [-1, 1] on CPU.

        ``sampler`` "ddpm" runs all T ancestral steps of the schedule (``steps`` is ignored), "ddim"
        runs ``steps`` deterministic (eta 0) or stochastic steps. Batch b draws all its noise from a
        generator seeded with ``seed * 1_000_003 + b``, so a (seed, batch_size) pair always gives the
        same noise, whatever executes the circuits. ``progress`` is called once per denoising step of
        each batch. ``batches`` (indices) generates only those batches (a resumed study), concatenated
        in that order. :class:`~nisqdiff.errors.UsageError` for the options :meth:`check` refuses.
        """
        self.check(num, sampler, steps, eta, batch_size, seed)
        unet = self.denoiser(torch_device)
        out = []
        for b in range(math.ceil(num / batch_size)) if batches is None else batches:
            n = min(batch_size, num - b * batch_size)
            gen = torch.Generator().manual_seed(seed * 1_000_003 + b)
            if self.noise is not None:
                from .qrng import PoolNoise

                pool, start, per_batch = self.noise
                gen = PoolNoise(pool, start + b * per_batch, per_batch)
            shape = (n, *self.image_shape)
            if sampler == "ddpm":
                x = self.scheduler.ddpm_sample(unet, shape, gen, torch_device=torch_device, progress=progress)
            else:
                x = self.scheduler.ddim_sample(unet, shape, gen, steps=steps, eta=eta, torch_device=torch_device,
                                               progress=progress)  # fmt: skip
            out.append(x.cpu())
        return torch.cat(out)

    def generate(self, num: int, sampler: str = "ddim", steps: int = 50, eta: float = 0.0, batch_size: int = 256,
                 seed: int = 0, torch_device: str = "cpu", show_progress: bool = True,
                 batches: list[int] | None = None, on_batch=None) -> tuple[torch.Tensor, dict]:  # fmt: skip
        """:meth:`__call__` under a tqdm bar, with the run's metadata: the model's source, the sampling
        settings and the executor's summary (calls, executions, seconds, standard errors). A device
        runs under :class:`~nisqdiff.cost.CostWatch` (a bar over its calls; a wall-time estimate and a
        faster equivalent device on stderr when the run looks long). The executor is reseeded before
        each batch b with ``call_seed(its seed, b)``, so batch b's images do not depend on which other
        batches run (``batches``: only these, in this order; one rank's share of a distributed run).
        ``on_batch(b, images, device_summary, seconds)`` is called as each batch finishes (what
        :func:`nisqdiff.device_runs.execute` keeps for ``--resume``)."""
        from tqdm import tqdm

        from .devices.base import call_seed

        per_batch = self.steps_per_batch(sampler, steps)
        todo = list(range(-(-num // max(batch_size, 1)))) if batches is None else list(batches)
        device_seed = getattr(self.executor, "seed", 0)
        watch = watch_device(self.executor, self.unet, num, per_batch, batch_size, show_progress)
        t0 = time.time()
        logs = []
        try:
            with tqdm(total=per_batch * len(todo), desc=f"sample {self.arch} {sampler}", unit="step",
                      disable=not show_progress) as bar:  # fmt: skip
                parts = []
                for b in todo:
                    t_batch, log = time.time(), ExecutionLog(watch)
                    self.unet.set_executor(log)
                    log.reseed(call_seed(device_seed, b))
                    parts.append(self(num, sampler, steps, eta, batch_size, seed, torch_device, bar.update, [b]))
                    logs.append(log.summary())
                    if on_batch is not None:
                        on_batch(b, parts[-1], logs[-1], time.time() - t_batch)
                images = torch.cat(parts) if parts else torch.zeros(0, *self.image_shape)
            watch.reseed(device_seed)  # the settings recorded name the run's seed
        finally:
            self.unet.set_executor(self.executor)
            if isinstance(watch, CostWatch):
                watch.bar.close()
        meta = {
            "checkpoint": self.info.get("source"),
            "checkpoint_sha256": self.info.get("sha256"),
            "arch": self.arch,
            "step": self.info.get("step"),
            "num": num,
            "sampler": sampler,
            "steps": per_batch,
            "eta": eta if sampler == "ddim" else None,
            "batch_size": batch_size,
            "seed": seed,
            "precision": self.precision,
            "device": merge_summaries(logs, watch.settings()),
            "wall_time_s": round(time.time() - t0, 2),
        }
        return images, meta


class _Autocast:
    """An epsilon model called under bf16 autocast, returning fp32."""

    def __init__(self, unet, device_type: str):
        self.unet, self.device_type = unet, device_type

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.unet(x, t).float()
