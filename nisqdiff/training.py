"""DDPM training with the paper's settings (SPEC.md): Adam, P2-weighted loss, EMA, checkpoints, resume.

The batch of step s is a pure function of (seed, s): batches walk through a new random permutation
of the training set each epoch, and the timesteps and noise of step s come from a generator seeded
with (seed, s). A resumed run therefore reaches exactly the state of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from . import data
from .distributed import Dist, batch_slice
from .checkpoints import load_checkpoint, load_model, save_checkpoint
from .diffusion import GaussianDiffusion, ScheduleConfig
from .errors import TrainingError, UsageError
from .files import RunLock, atomic_write_text, check_writable, remove_orphans
from .images import save_grid
from .models import UNet, build_model, get_arch
from .pipeline import DiffusionPipeline, check_torch_device, native_bf16
from .qrng import PoolNoise, check_source, parse_source

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
SELECTION = "training_images.json"  # the dataset indices of a run on a subset or on some classes


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in its checkpoint and ``config.json``)."""

    arch: str = "classical"
    dataset: str = "mnist"
    epochs: float | None = 20.0  # None on resume: keep the run's own
    max_steps: int | None = None
    batch_size: int = 128
    subset: int | None = None
    classes: list[int] | None = None  # train on these classes only (e.g. [3]: one digit, as Chen et al. train)
    per_class: int | None = None  # the first K images of each class (balanced small data)
    seed: int = 0
    lr: float = 1e-3
    adam_betas: tuple[float, float] = (0.9, 0.99)
    adam_eps: float = 1e-8
    ema_decay: float = 0.995
    ema_update_after_step: int = 100
    ema_update_every: int = 10
    ema_inv_gamma: float = 1.0
    ema_power: float = 2 / 3
    init_from: str | None = None
    freeze_classical: bool = False
    amp: bool | None = None  # bf16 autocast for convolutions/matmuls (fp32 weights, loss and circuits); None:
    # where the device has native bf16 (pipeline.native_bf16), decided when the run starts and stored as True/False
    torch_device: str = "cpu"
    grid_images: int = 16
    grid_ddim_steps: int = 25
    schedule: dict = field(default_factory=lambda: ScheduleConfig().to_dict())  # the diffusion schedule
    noise_source: str = "pseudo"  # the forward process's noise: torch's generator, or "pool:PATH" (nisqdiff qrng)
    checkpoint_minutes: float = 0.0  # also checkpoint mid-epoch every this many minutes (0: at epoch ends only)

    def total_steps(self, n_images: int) -> int:
        """``max_steps`` if set, else ceil(epochs * N / batch) (9,375 for 20 epochs of 60k at 128)."""
        return self.max_steps if self.max_steps is not None else math.ceil(self.epochs * n_images / self.batch_size)


class EMA:
    """Parameter EMA of SPEC.md (lucidrains' ema-pytorch schedule): every ``update_every`` steps,
    copy while step <= ``update_after_step``, then ema = d * ema + (1 - d) * w with
    d = clip(1 - (1 + n / inv_gamma)^-power, 0, decay), n = max(step - update_after_step - 1, 0)."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig):
        self.cfg = cfg
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay(self, step: int) -> float:
        n = max(step - self.cfg.ema_update_after_step - 1, 0)
        value = 1 - (1 + n / self.cfg.ema_inv_gamma) ** -self.cfg.ema_power
        return min(max(value, 0.0), self.cfg.ema_decay)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Call after optimiser step number ``step`` (1-based)."""
        if step % self.cfg.ema_update_every:
            return
        params = list(model.parameters())
        ema_params = list(self.model.parameters())
        if step <= self.cfg.ema_update_after_step:
            torch._foreach_copy_(ema_params, params)
            return
        d = self.decay(step)
        torch._foreach_lerp_(ema_params, params, 1 - d)


def batch_indices(step: int, batch_size: int, n: int, seed: int, cache: dict) -> torch.Tensor:
    """Indices of step ``step``'s batch: positions [step*B, (step+1)*B) of the concatenation of
    per-epoch permutations (epoch e's permutation seeded by (seed, e)); ``cache`` keeps the last two."""
    pos, end, parts = step * batch_size, (step + 1) * batch_size, []
    while pos < end:
        epoch = pos // n
        if epoch not in cache:
            cache[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
            for old in [e for e in cache if e < epoch - 1]:
                del cache[old]
        take = min(end, (epoch + 1) * n) - pos
        parts.append(cache[epoch][pos % n : pos % n + take])
        pos += take
    return torch.cat(parts)


def _run_exists(out: Path) -> bool:
    """A folder holds a run once its first checkpoint exists (a run stopped before it counts as empty)."""
    return (out / CHECKPOINT).exists()


def validate(cfg: TrainConfig, resume: bool = False) -> None:
    """Check every option of ``cfg`` before anything is written: names, finite positive counts, a seed
    that fits in 63 bits, and options that need each other. :class:`~nisqdiff.errors.UsageError`
    naming the option (what a fresh run and a resume's overrides must satisfy alike; on resume
    ``arch`` None means the run's own)."""
    if cfg.arch is not None or not resume:
        get_arch(cfg.arch)
    data.check_dataset(cfg.dataset)
    data.medmnist.check_trainable(cfg.dataset, cfg.arch)
    if not (math.isfinite(cfg.checkpoint_minutes) and cfg.checkpoint_minutes >= 0):
        raise UsageError(f"--checkpoint-minutes must be 0 (epoch ends only) or a positive number, got {cfg.checkpoint_minutes}")
    if cfg.epochs is not None and not (math.isfinite(cfg.epochs) and cfg.epochs > 0):
        raise UsageError(f"--epochs must be a positive finite number, got {cfg.epochs}")
    for name in ("max_steps", "batch_size", "subset", "per_class"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not 0 <= cfg.seed < 2**63:
        raise UsageError(f"--seed must be in [0, 2^63), got {cfg.seed}")
    if cfg.grid_images < 0:
        raise UsageError(f"--grid-images must be >= 0, got {cfg.grid_images}")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise UsageError(f"the learning rate must be a positive finite number, got {cfg.lr}")
    if cfg.freeze_classical and not cfg.init_from and not resume:
        raise UsageError("--freeze-classical needs --init-from CKPT (it trains only the circuits of a transferred model)")
    if cfg.init_from and not Path(cfg.init_from).exists():
        raise UsageError(f"--init-from {cfg.init_from} does not exist")
    if cfg.init_from and cfg.arch and get_arch(cfg.arch).family != "unet":
        raise UsageError(f"--init-from copies De Falco et al.'s classical U-Net; {cfg.arch} is another network: drop --init-from")
    check_source(cfg.noise_source)
    try:
        ScheduleConfig.from_dict(cfg.schedule).check()
    except TypeError as exc:
        raise UsageError(f"unknown schedule parameter: {exc}") from None


def transfer_from_classical(model: UNet, source: str, include_vertex: bool = False) -> list[str]:
    """Copy the encoder and decoder of a trained ``classical`` model into ``model``: the raw training
    weights of a checkpoint, or the EMA weights of a pretrained folder (the only ones it holds); the
    vertex keeps its fresh initialisation (SPEC.md "Transfer learning"). With ``include_vertex`` (the
    frozen variant of seed 002) the vertex's classical weights whose names and shapes match are copied
    too. Returns the copied names; raises :class:`~nisqdiff.errors.CheckpointError` if ``source`` is
    not a classical model."""
    if Path(source).is_dir():
        weights = load_model(source, expect_arch="classical")[0].state_dict()
    else:
        weights = load_checkpoint(source, expect_arch="classical")["model"]
    target = model.state_dict()
    prefixes = model.encoder_decoder_prefixes() + (("mid_",) if include_vertex else ())
    copied = []
    for name, value in weights.items():
        if name.startswith(prefixes) and name in target and target[name].shape == value.shape:
            target[name] = value.clone()
            copied.append(name)
    model.load_state_dict(target)
    return copied


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    data_dir: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    dist: Dist | None = None,
) -> dict:
    """Train ``cfg.arch`` and write checkpoints, sample grids and metrics into ``out_dir``.

    Writes, each epoch and at the end: ``checkpoint.pt`` (atomic; architecture and configuration,
    model and EMA weights, optimiser state, step, RNG state), ``samples_stepN.png`` (EMA, DDIM) and
    one JSON line in ``metrics.jsonl``, in that order; with ``cfg.checkpoint_minutes`` also a
    checkpoint alone every that many minutes within an epoch (the epoch's losses so far go with it, so a
    resume from it still writes the whole epoch's mean loss). Every option is checked and the data loaded
    before anything is written; the run folder is locked for the whole run (:class:`~nisqdiff.files.RunLock`).
    A resume first writes again what belongs to the last checkpoint and is missing (its metrics line,
    its grid) and removes orphan temporary files. Returns the last metrics record. Raises
    :class:`~nisqdiff.errors.TrainingError` if ``out_dir`` holds a run and neither ``resume`` nor
    ``overwrite`` is set (or both are), or if the loss becomes non-finite (the last good checkpoint is
    kept); :class:`~nisqdiff.errors.UsageError` / :class:`~nisqdiff.errors.DataError` for bad options or data.
    With ``dist`` (:func:`nisqdiff.distributed.init`) every rank trains its slice of each global batch
    under DistributedDataParallel and rank 0 alone locks the folder and writes.
    """
    out = Path(out_dir)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; give one")
    validate(cfg, resume)
    check_torch_device(cfg.torch_device)
    batch_slice(cfg.batch_size, dist)  # a batch that does not split over the ranks is refused here
    check_writable(out)
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / CHECKPOINT)
        cfg = _resumed_config(cfg, ckpt, out)
    elif _run_exists(out) and not overwrite:
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it")
    if cfg.epochs is None:
        cfg.epochs = 20.0
    images, _, indices = data.load_selection(cfg.dataset, "train", data_dir, cfg.subset, cfg.classes, cfg.per_class)
    if images.shape[0] < cfg.batch_size:
        raise TrainingError(f"batch size {cfg.batch_size} exceeds the {images.shape[0]} training images; lower --batch-size")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch)
    if cfg.init_from and not resume:
        transfer_from_classical(model, cfg.init_from, include_vertex=cfg.freeze_classical)
    if cfg.freeze_classical:
        circuit_params = {id(c.weights) for c in model.circuits()}
        if not circuit_params:
            raise TrainingError(f"--freeze-classical leaves nothing to train: '{cfg.arch}' has no circuits")
        for p in model.parameters():
            p.requires_grad_(id(p) in circuit_params)
    if dist is not None:
        cfg.torch_device = dist.torch_device
    if cfg.amp is None:
        cfg.amp = native_bf16(cfg.torch_device)
    pool = parse_source(cfg.noise_source)
    noise = None
    if pool is not None:  # every step's batch of noise: its own part of this run's range of the pool
        per_step = cfg.batch_size * images[0].numel()
        noise = (pool, pool.reserve(f"{out.resolve()}:train", per_step * cfg.total_steps(images.shape[0])), per_step)
    with RunLock(out) if dist is None or dist.main else contextlib.nullcontext():
        if not resume and _run_exists(out) and not overwrite:  # another run got here first
            raise TrainingError(f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it")
        if (dist is None or dist.main) and ckpt is None and (cfg.subset or cfg.classes or cfg.per_class):
            selection = {"dataset": cfg.dataset, "split": "train", "subset": cfg.subset, "classes": cfg.classes,
                         "per_class": cfg.per_class, "indices": indices.tolist()}  # fmt: skip
            atomic_write_text(out / SELECTION, json.dumps(selection) + "\n")  # the images this run trains on
        return _train(cfg, out, images.to(cfg.torch_device), model, ckpt, show_progress, dist, noise)


def _resumed_config(cfg: TrainConfig, ckpt: dict, out: Path) -> TrainConfig:
    """The stored configuration of the run in ``out``, with the new target (epochs or max steps), torch
    device and checkpoint interval (how this process runs, not what the run is)."""
    stored = TrainConfig(**{**ckpt["config"], "adam_betas": tuple(ckpt["config"]["adam_betas"])})
    if cfg.arch is not None and cfg.arch != stored.arch:
        raise TrainingError(f"--arch {cfg.arch} given but the run in {out} trains '{stored.arch}'")
    if cfg.epochs is not None:
        stored.epochs, stored.max_steps = cfg.epochs, None
    if cfg.max_steps is not None:
        stored.max_steps = cfg.max_steps
    stored.torch_device = cfg.torch_device  # a run may continue on another torch device
    stored.checkpoint_minutes = cfg.checkpoint_minutes
    if cfg.amp is not None:  # given on resume: e.g. a run moved to a machine without native bf16
        stored.amp = cfg.amp
    return stored


def _train(cfg: TrainConfig, out: Path, images: torch.Tensor, model: UNet, ckpt: dict | None, show_progress: bool,
           dist: Dist | None, noise: tuple | None = None) -> dict:  # fmt: skip
    """The training loop of :func:`train`, with the run folder locked (by rank 0)."""
    main = dist is None or dist.main
    model.to(cfg.torch_device)
    n = images.shape[0]
    trainable = [p for p in model.parameters() if p.requires_grad]
    # torch's fused Adam: the same update in one kernel over every tensor (2-3 ms a step on the CPU, against 9-10
    # for the per-tensor loop; parameters equal to 3e-8 after 10 steps; docs/performance.md)
    opt = torch.optim.Adam(trainable, lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, fused=True)
    ema = EMA(model, cfg)
    step, wall_offset, epoch_wall0 = 0, 0.0, 0.0
    losses: list[float] = []
    if main:
        remove_orphans(out)  # temporary files of atomic writes a kill interrupted
    if ckpt is not None:
        command = ckpt.get("command")
        model.load_state_dict(ckpt["model"])  # load_state_dict copies into the tensors' own device
        ema.model.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        step, wall_offset = ckpt["step"], ckpt["wall_time"]
        partial = ckpt.get("partial_epoch") or {}  # a checkpoint written mid-epoch: the epoch so far
        losses, epoch_wall0 = list(partial.get("losses", [])), partial.get("wall0", wall_offset)
        torch.set_rng_state(ckpt["rng_state"])
        if main:
            _complete_last_save(out, cfg, ema, ckpt)
    else:
        command = _command(dist)
        if main:
            for old in [out / METRICS, out / CHECKPOINT, *out.glob("samples_step*.png")]:
                old.unlink(missing_ok=True)  # only reached for a new run (a folder without checkpoint) or --overwrite
            atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2) + "\n")
    net, part = model, batch_slice(cfg.batch_size, dist)
    if dist is not None:
        device_ids = [torch.device(cfg.torch_device).index] if torch.device(cfg.torch_device).type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        dist.barrier()  # rank 0 has cleaned the folder before anyone trains

    diffusion = GaussianDiffusion(ScheduleConfig.from_dict(cfg.schedule))
    total = cfg.total_steps(n)
    perm_cache: dict = {}
    t0 = time.time() - wall_offset
    last_save = time.time()
    record: dict = (ckpt.get("metrics") or {}) if ckpt is not None else {}  # a finished run resumed: its last record
    bar = tqdm(total=total, initial=step, desc=f"train {cfg.arch}", disable=not (show_progress and main), unit="step")
    last_tick = time.time()
    model.train()
    while step < total:
        idx = batch_indices(step, cfg.batch_size, n, cfg.seed, perm_cache).to(cfg.torch_device)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
            source = PoolNoise(noise[0], noise[1] + step * noise[2], noise[2]) if noise is not None else None
            loss = diffusion.loss(net, images[idx], gen, part, source)
        batch_loss = dist.mean(loss) if dist is not None else loss.detach()  # every rank sees the global batch's loss
        if not torch.isfinite(batch_loss):
            bar.close()
            kept = f"last good checkpoint kept in {out / CHECKPOINT}" if (out / CHECKPOINT).exists() else "no checkpoint yet"
            raise TrainingError(f"loss became {batch_loss.item()} at step {step + 1}; stopped, {kept}")
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DistributedDataParallel averages the gradients over the ranks
        opt.step()
        step += 1
        ema.update(model, step)
        losses.append(batch_loss.item())
        now = time.time()
        bar.set_postfix(loss=f"{losses[-1]:.4f}", img_s=f"{cfg.batch_size / max(now - last_tick, 1e-9):.0f}")
        last_tick = now
        bar.update(1)
        epoch_end = (step * cfg.batch_size) // n > ((step - 1) * cfg.batch_size) // n
        if epoch_end or step == total:
            wall = time.time() - t0
            record = {
                "step": step,
                "epoch": round(step * cfg.batch_size / n, 4),
                "loss": sum(losses) / len(losses),
                "wall_time": round(wall, 2),
                "images_per_s": round(len(losses) * cfg.batch_size / max(wall - epoch_wall0, 1e-9), 1),
            }
            if main:
                _save(out, cfg, model, ema, opt, step, wall, record, command)
            if dist is not None:
                dist.barrier()
            epoch_wall0, losses, last_save = wall, [], time.time()
            model.train()
        elif main and cfg.checkpoint_minutes and now - last_save >= cfg.checkpoint_minutes * 60:
            # mid-epoch: the last epoch's record stays the checkpoint's; the epoch so far travels with it
            partial = {"losses": losses, "wall0": epoch_wall0}
            save_checkpoint(out / CHECKPOINT, asdict(cfg), model, ema.model, opt, step, now - t0, record, command, partial)
            last_save = time.time()
    bar.close()
    return record


def _command(dist: Dist | None) -> str | None:
    """The command line that started the run, as recorded in its checkpoint (torchrun's when distributed)."""
    if Path(sys.argv[0]).name == "nisqdiff":
        return shlex.join(["nisqdiff", *sys.argv[1:]])
    if dist is not None:
        return f"torchrun --nproc-per-node {dist.world} -m nisqdiff " + shlex.join(sys.argv[1:])
    return None


def _grid_path(out: Path, step: int) -> Path:
    return out / f"samples_step{step:06d}.png"


def _save_grid(out: Path, cfg: TrainConfig, ema_model, step: int) -> None:
    pipe = DiffusionPipeline(ema_model, ScheduleConfig.from_dict(cfg.schedule))
    grid = pipe(cfg.grid_images, "ddim", cfg.grid_ddim_steps, batch_size=cfg.grid_images, seed=0, torch_device=cfg.torch_device)
    save_grid(grid, _grid_path(out, step))


def _append_metrics(out: Path, record: dict) -> None:
    """Add ``record`` as the last line of ``metrics.jsonl`` (the whole file rewritten atomically)."""
    path = out / METRICS
    old = path.read_text() if path.is_file() else ""
    atomic_write_text(path, old + json.dumps(record) + "\n")


def _complete_last_save(out: Path, cfg: TrainConfig, ema: EMA, ckpt: dict) -> None:
    """Write again what belongs to the checkpoint and a kill may have lost: its grid and its metrics
    line (exactly once)."""
    step, record = ckpt["step"], ckpt.get("metrics") or {}
    if record.get("step") != step:  # written mid-epoch (--checkpoint-minutes): no grid or line belongs to it
        return
    if cfg.grid_images and not _grid_path(out, step).is_file():
        _save_grid(out, cfg, ema.model, step)
    lines = [json.loads(x) for x in (out / METRICS).read_text().splitlines()] if (out / METRICS).is_file() else []
    if not any(r.get("step") == step for r in lines):
        _append_metrics(out, record)


def _save(out: Path, cfg: TrainConfig, model, ema: EMA, opt, step: int, wall: float, record: dict, command) -> None:
    """The checkpoint, then the EMA sample grid, then the metrics line of step ``step`` (a resume
    completes what a kill in between left out, see :func:`_complete_last_save`)."""
    save_checkpoint(out / CHECKPOINT, asdict(cfg), model, ema.model, opt, step, wall, record, command)
    if cfg.grid_images:
        _save_grid(out, cfg, ema.model, step)
    _append_metrics(out, record)
