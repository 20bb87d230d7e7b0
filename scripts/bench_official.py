"""Time the official JAX code's training step and sampling forward, as its ``train.train()`` builds them.

    /path/to/jax-env/bin/python scripts/bench_official.py --official PATH [--model UNet] [--repeats 5]

``PATH`` is a checkout of NesyaLab/Quantum-Hybrid-Diffusion-Models (measured at 6dec334). The interpreter
needs jax, flax, optax, pennylane, einops and ml_collections (../shared/MEASUREMENTS.md used jax 0.4.25,
flax 0.8.2, optax 0.2.1, pennylane 0.35.1); it does not need nisqdiff. The official ``train.py`` also
imports tensorflow, tensorflow_datasets, wandb and clu for its data pipeline and logging, which the step
does not use: those that are not installed are registered as empty modules while ``train.py`` imports,
and removed again.

The step is the pmapped ``p_loss`` of ``train.train()`` with configs/mnist.py (batch 128 of 28x28x1,
its per-step ``loss_ema`` forward included); the sampling forward is the model's ``apply`` on the EMA
parameters at batch 256, jitted. Prints one JSON line: compile seconds (the first call) and the median
seconds of ``--repeats`` further calls of each. ``scripts/bench_train.py --official PATH`` runs this and
puts the figures beside nisqdiff's.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import statistics
import sys
import time
import types
from pathlib import Path

UNUSED_BY_THE_STEP = ("tensorflow", "tensorflow_datasets", "wandb", "clu", "clu.metric_writers", "clu.periodic_actions")


def stand_in_missing() -> list[str]:
    """Register an empty module for each of :data:`UNUSED_BY_THE_STEP` that is not installed."""
    missing = []
    for name in UNUSED_BY_THE_STEP:
        parent = name.rpartition(".")[0]
        if (parent and parent in missing) or importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)
            if parent:
                setattr(sys.modules[parent], name.rpartition(".")[2], sys.modules[name])
            missing.append(name)
    return missing


def timed(fn, repeats: int) -> tuple[float, float]:
    """(seconds of the first call, median seconds of ``repeats`` more); ``fn`` blocks until done."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, help="checkout of NesyaLab/Quantum-Hybrid-Diffusion-Models")
    ap.add_argument("--model", default="UNet", help="its config.model.model: UNet, QVUNet, FullQVUNet, QuanvUNet")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sample-batch", type=int, default=256)
    args = ap.parse_args()
    root = Path(args.official).resolve()
    if not (root / "train.py").is_file() or not (root / "configs" / "mnist.py").is_file():
        sys.exit(f"error: {root} is not a checkout of the official code (no train.py or configs/mnist.py)")
    import flax.io  # noqa: F401  before the stand-ins: flax asks importlib whether tensorflow is there
    import flax.training.checkpoints  # noqa: F401
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import jax_utils

    stand_ins = stand_in_missing()
    sys.path.insert(0, str(root))
    import train  # the official code
    import utils

    for name in stand_ins:  # gone again: libraries that look for tensorflow in sys.modules (einops) must not find it
        del sys.modules[name]

    spec = importlib.util.spec_from_file_location("official_mnist_config", root / "configs" / "mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.model.model = args.model

    state = jax_utils.replicate(train.create_train_state(jax.random.PRNGKey(0), config))
    ddpm_params = utils.get_ddpm_params(config.ddpm)
    step = functools.partial(train.p_loss, ddpm_params=ddpm_params, loss_fn=train.get_loss_fn(config),
                             self_condition=config.ddpm.self_condition, is_pred_x0=config.ddpm.pred_x0, pmap_axis="batch")  # fmt: skip
    p_train_step = jax.pmap(step, axis_name="batch")
    n_dev = jax.local_device_count()
    rng = np.random.default_rng(0)
    size, channels = config.data.image_size, config.data.channels
    batch = {"image": jnp.asarray(rng.uniform(-1, 1, (n_dev, config.data.batch_size, size, size, channels)), jnp.float32)}
    keys = jnp.asarray(jax.random.split(jax.random.PRNGKey(1), n_dev))
    holder = {"state": state}

    def train_step():
        holder["state"], metrics = p_train_step(keys, holder["state"], batch)
        jax.block_until_ready(metrics["loss"])

    single = jax_utils.unreplicate(state)
    apply = jax.jit(lambda p, x, t: single.apply_fn({"params": p}, x, t))
    xs = jnp.asarray(rng.standard_normal((args.sample_batch, size, size, channels)), jnp.float32)
    ts = jnp.full((args.sample_batch,), 500, jnp.int32)

    def sample_forward():
        jax.block_until_ready(apply(single.params_ema, xs, ts))

    compile_s, step_s = timed(train_step, args.repeats)
    sample_compile_s, sample_s = timed(sample_forward, args.repeats)
    print(json.dumps({"model": args.model, "jax": jax.__version__, "devices": n_dev, "batch": config.data.batch_size,
                      "train_compile_s": compile_s, "train_step_s": step_s, "sample_batch": args.sample_batch,
                      "sample_compile_s": sample_compile_s, "sample_forward_s": sample_s, "stand_ins": stand_ins}))  # fmt: skip


if __name__ == "__main__":
    main()
