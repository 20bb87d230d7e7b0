"""Training and sampling over several processes with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc-per-node N -m nisqdiff train --distributed ...`` starts N processes; each reads
torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) through
:func:`init`, which joins the process group: gloo on CPU, NCCL on CUDA (process i on ``cuda:LOCAL_RANK``).
Training wraps the model in ``DistributedDataParallel`` and splits every global batch into equal
contiguous slices, one per rank, with the timesteps and noise the single-process run draws for the whole
batch, so the averaged gradient is the single-process one up to floating-point reduction order. Rank 0
alone writes (checkpoints, grids, metrics, samples). Sampling gives batch b to rank b mod N and gathers
the images on rank 0 in batch order: each batch's noise depends only on (seed, b), so the images equal a
one-process run's. nisqdiff has no scheduler of its own: torchrun (or a cluster's launcher calling it)
starts the processes.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch

from .errors import UsageError

LAUNCH = "launch it with torchrun, e.g. `torchrun --nproc-per-node 2 -m nisqdiff train --distributed ...`"


@dataclass(frozen=True)
class Dist:
    """This process's place in the group: ``rank`` of ``world`` processes, ``local_rank`` on its node,
    and the torch device it computes on."""

    rank: int
    world: int
    local_rank: int
    torch_device: str

    @property
    def main(self) -> bool:
        """Whether this process writes (rank 0)."""
        return self.rank == 0

    def barrier(self) -> None:
        torch.distributed.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the ranks (every rank gets it)."""
        value = value.detach().clone().to(self.torch_device)
        torch.distributed.all_reduce(value)
        return value / self.world

    def gather(self, obj):
        """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
        out = [None] * self.world if self.main else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def close(self) -> None:
        """Leave the group once every rank is done (rank 0 may still be writing or scoring)."""
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def init(torch_device: str) -> Dist:
    """Join the process group torchrun set up: gloo for ``cpu``, NCCL for ``cuda`` (one GPU per local
    rank). :class:`~nisqdiff.errors.UsageError` without torchrun's environment, or with fewer GPUs on
    the node than local ranks."""
    missing = [v for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise UsageError(f"--distributed needs torchrun's environment ({', '.join(missing)} unset); {LAUNCH}")
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    if torch.device(torch_device).type == "cuda":
        if local >= torch.cuda.device_count():
            raise UsageError(f"local rank {local} has no GPU: this node has {torch.cuda.device_count()}; lower --nproc-per-node")
        torch_device = f"cuda:{local}"
        torch.cuda.set_device(local)
        backend = "nccl"
    else:
        backend = "gloo"
    if not torch.distributed.is_initialized():  # rank 0 may score for hours while the others wait at a barrier
        torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(hours=24))
    return Dist(rank, world, local, torch_device)


def batch_slice(batch_size: int, dist: Dist | None) -> slice:
    """This rank's contiguous slice of a global batch (the whole batch without ``dist``);
    :class:`~nisqdiff.errors.UsageError` when the batch does not split evenly."""
    if dist is None:
        return slice(0, batch_size)
    if batch_size % dist.world:
        raise UsageError(f"--batch-size {batch_size} does not split over {dist.world} processes; use a multiple of {dist.world}")
    per = batch_size // dist.world
    return slice(dist.rank * per, (dist.rank + 1) * per)


def my_batches(num: int, batch_size: int, dist: Dist) -> list[int]:
    """The sampling batches of this rank: b = rank, rank + N, rank + 2N, ..."""
    return list(range(dist.rank, -(-num // batch_size), dist.world))


def gather_images(images: torch.Tensor, meta: dict, num: int, batch_size: int, dist: Dist) -> tuple[torch.Tensor, dict] | None:
    """On rank 0: every rank's images (its batches, in order) put back in batch order (num, ...), and the
    metadata with the device counts summed over ranks and ``distributed`` (the world size); None elsewhere."""
    from .circuits import merge_summaries

    parts = dist.gather((my_batches(num, batch_size, dist), images.cpu(), meta["device"]))
    if not dist.main:
        return None
    by_batch = {}
    for batches, imgs, _ in parts:
        sizes = [min(batch_size, num - b * batch_size) for b in batches]
        by_batch.update(zip(batches, torch.split(imgs, sizes)))
    total = merge_summaries([d for _, _, d in parts], meta["device"])
    return torch.cat([by_batch[b] for b in sorted(by_batch)]), {**meta, "device": total, "distributed": {"world": dist.world}}
