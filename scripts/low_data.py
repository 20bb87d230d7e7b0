"""Issue 15's small-data experiment (Chen et al., arXiv 2504.00034): qbottleneck against its classical twin.

    python scripts/low_data.py --data-dir ../shared/data --out runs/lowdata --workers 2   # run (resumable)
    python scripts/low_data.py --data-dir ../shared/data --out runs/lowdata --ablate        # circuits -> 0
    python scripts/low_data.py --out runs/lowdata --table                                 # the tables

Every cell trains ``qbottleneck``, its classical twin ``bottleneck`` and (with pseudo-random noise) the control
``bottleneck-const`` (nothing in the gate's place) with the same seed on the same N MNIST training images
(``--classes 3 --per-class N``: the first N threes, one digit as the paper's code trains; or ``balanced``: the
first N/10 of every digit), for ``--steps`` optimiser steps at batch min(N, 32), then samples 1,000 images
(DDIM, ``--ddim-steps``) and scores them with ``nisqdiff evaluate`` (classifier backbone, against the real
training images of the same classes: all 6,131 threes, or the first 10,000 of all digits when balanced).
The grid: the main comparison (one digit, cosine schedule, pseudo-random noise) at every N, and at N = 10 and 100 the same with quantum-generated noise (a pool drawn
on the emulator at fake_sherbrooke's calibration, used for training and sampling), with the shifted-cosine
schedule, and balanced. Each finished model appends one line to ``OUT/results.jsonl``; a rerun skips them.
``--ablate`` samples every finished qbottleneck of pseudo-random noise again with its circuit's outputs
replaced by 0 (the ``depolarized`` device, same seeds) and scores that (``OUT/ablation.jsonl``): a model whose FID does not move
has not shown that it uses its circuit. ``--table`` prints mean and 95% t-interval across seeds of each
model's FID, the paired differences (same seed), and the ablation's paired FID change.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ARCHS = ("qbottleneck", "bottleneck", "bottleneck-const")
KEY = ("regime", "n", "schedule", "noise", "seed")


def archs_of(c: dict) -> tuple[str, ...]:
    """The models of cell ``c``: all three with pseudo-random noise; the quantum-noise cells compare the
    first two only (their pools are sized for two)."""
    return ARCHS if c["noise"] == "pseudo" else ARCHS[:2]
WORD, PIXELS = 32, 784


def grid(seeds: int) -> list[dict]:
    """The cells (one per regime, N, schedule, noise and seed; each trains both architectures)."""
    cells = []
    for seed in range(seeds):
        for n in (10, 30, 100, 1000):
            cells.append({"regime": "one-digit", "n": n, "schedule": "cosine", "noise": "pseudo", "seed": seed})
        for n in (10, 100):
            cells.append({"regime": "one-digit", "n": n, "schedule": "cosine", "noise": "pool", "seed": seed})
            cells.append({"regime": "one-digit", "n": n, "schedule": "shifted-cosine", "noise": "pseudo", "seed": seed})
            cells.append({"regime": "balanced", "n": n, "schedule": "cosine", "noise": "pseudo", "seed": seed})
    return cells


def cell_name(c: dict) -> str:
    return f"{c['regime']}-n{c['n']}-{c['schedule']}-{c['noise']}-s{c['seed']}"


def nisqdiff(*args: str, log: Path) -> None:
    with open(log, "a") as fh:
        fh.write(f"$ nisqdiff {' '.join(args)}\n")
        fh.flush()
        subprocess.run([sys.executable, "-m", "nisqdiff", *args], check=True, stdout=fh, stderr=subprocess.STDOUT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})  # one core per cell


def run_cell(c: dict, args, archs: tuple[str, ...]) -> list[dict]:
    """Train, sample and evaluate the architectures ``archs`` of cell ``c``; returns their result rows."""
    folder = args.out / cell_name(c)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "log.txt"
    batch = min(c["n"], 32)
    data = ["--classes", "3", "--per-class", str(c["n"])] if c["regime"] == "one-digit" else ["--per-class", str(c["n"] // 10)]
    noise = []
    if c["noise"] == "pool":
        pool = folder / "pool.npz"
        if not pool.exists():  # both models' training and sampling, without reuse
            sampled = math.ceil(args.num / 256) * 256  # `sample` reserves whole batches of 256
            bits = len(archs_of(c)) * (args.steps * batch + sampled) * PIXELS * WORD
            nisqdiff("qrng", "--bits", str(bits), "--out", str(pool), "--device", "emulator", "--calibration",
                     "fake_sherbrooke", "--device-seed", str(c["seed"]), log=log)  # fmt: skip
        noise = ["--noise-source", f"pool:{pool}"]
    sched = ["--schedule", c["schedule"]] + (["--logsnr-shift", "1.65"] if c["schedule"] == "shifted-cosine" else [])
    rows = []
    for arch in archs:
        run = folder / arch
        t0 = time.time()
        nisqdiff("train", "--arch", arch, "--seed", str(c["seed"]), *data, "--batch-size", str(batch), "--max-steps",
                 str(args.steps), "--grid-images", "0", "--threads", "1", *sched, *noise, "--data-dir", str(args.data_dir),
                 "--out", str(run), "--overwrite", log=log)  # fmt: skip
        train_s = time.time() - t0
        nisqdiff("sample", "--checkpoint", str(run / "checkpoint.pt"), "--num", str(args.num), "--steps", str(args.ddim_steps),
                 "--seed", str(c["seed"]), *noise, "--out", str(run / "samples"), "--overwrite", log=log)  # fmt: skip
        nisqdiff("evaluate", "--samples", str(run / "samples" / "samples.pt"), "--data-dir", str(args.data_dir),
                 *(["--classes", "3"] if c["regime"] == "one-digit" else ["--num-real", "10000"]),
                 "--out", str(run / "metrics.json"), log=log)  # fmt: skip
        m = json.loads((run / "metrics.json").read_text())
        rows.append({**c, "arch": arch, "fid": m["fid"], "kid_mean": m["kid_mean"], "kid_std": m["kid_std"],
                     "train_seconds": round(train_s, 1), "seconds": round(time.time() - t0, 1),
                     "final_loss": json.loads((run / "metrics.jsonl").read_text().splitlines()[-1]).get("loss")})  # fmt: skip
    return rows


def ablate(c: dict, args) -> dict:
    """qbottleneck of cell ``c`` sampled on the depolarized device (every <Z> = 0) and scored."""
    run = args.out / cell_name(c) / "qbottleneck"
    log = args.out / cell_name(c) / "log.txt"
    nisqdiff("sample", "--checkpoint", str(run / "checkpoint.pt"), "--num", str(args.num), "--steps", str(args.ddim_steps),
             "--seed", str(c["seed"]), "--device", "depolarized", "--out", str(run / "samples-depolarized"), "--overwrite", log=log)  # fmt: skip
    ref = ["--classes", "3"] if c["regime"] == "one-digit" else ["--num-real", "10000"]
    nisqdiff("evaluate", "--samples", str(run / "samples-depolarized" / "samples.pt"), "--data-dir", str(args.data_dir), *ref,
             "--out", str(run / "metrics-depolarized.json"), log=log)  # fmt: skip
    m = json.loads((run / "metrics-depolarized.json").read_text())
    return {**c, "arch": "qbottleneck", "device": "depolarized", "fid": m["fid"], "kid_mean": m["kid_mean"]}


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)


def _paired(rows_by_seed: dict, a: str, b: str | None, metric: str = "fid") -> str:
    """Mean +- 95% half-width over seeds of a's metric (b None) or of a - b, same seed."""
    values = [r[a][metric] - (r[b][metric] if b else 0) for r in rows_by_seed.values() if a in r and (b is None or b in r)]
    if not values:
        return "-"
    mean, half = t_interval(values)
    return f"{mean:+.1f} +- {half:.1f}" if b else f"{mean:.1f} +- {half:.1f}"


def table(out: Path) -> str:
    """The experiment's Markdown table: per regime, schedule, noise and N, FID of each model and the paired
    differences (same seed), KID of the two main models, and the circuit ablation."""
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    if (out / "ablation.jsonl").exists():
        rows += [{**r, "arch": "circuit->0"} for r in map(json.loads, (out / "ablation.jsonl").read_text().splitlines())]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["regime"], r["schedule"], r["noise"], r["n"]), {}).setdefault(r["seed"], {})[r["arch"]] = r
    lines = ["| regime | schedule | noise | N | seeds | FID q | FID c | FID const | FID q - c | FID q - const | "
             "KID q - c | FID q with circuit->0 minus q |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in sorted(groups, key=lambda k: (k[0] != "one-digit", k[1] != "cosine", k[2] != "pseudo", k[3])):
        g = groups[key]
        seeds = sum(1 for r in g.values() if "qbottleneck" in r and "bottleneck" in r)
        cells = [_paired(g, "qbottleneck", None), _paired(g, "bottleneck", None), _paired(g, "bottleneck-const", None),
                 _paired(g, "qbottleneck", "bottleneck"), _paired(g, "qbottleneck", "bottleneck-const"),
                 _paired(g, "qbottleneck", "bottleneck", "kid_mean"), _paired(g, "circuit->0", "qbottleneck")]  # fmt: skip
        lines.append(f"| {' | '.join(map(str, key))} | {seeds} | {' | '.join(cells)} |")
    seconds = {a: [r["train_seconds"] for r in rows if r["arch"] == a] for a in ARCHS}
    lines.append("")
    lines.append("mean training seconds per model: " + ", ".join(f"{a} {sum(s) / len(s):.0f}" for a, s in seconds.items() if s))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/lowdata"))
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000, help="optimiser steps per model")
    ap.add_argument("--num", type=int, default=1000, help="generated images per model")
    ap.add_argument("--ddim-steps", type=int, default=25)
    ap.add_argument("--workers", type=int, default=1, help="cells run at once (one CPU thread each)")
    ap.add_argument("--ablate", action="store_true", help="score finished qbottlenecks with their circuits' outputs at 0")
    ap.add_argument("--table", action="store_true", help="print the tables of OUT/results.jsonl and stop")
    args = ap.parse_args()
    if args.table:
        print(table(args.out))
        return
    if args.ablate:
        done_rows = [json.loads(line) for line in (args.out / "results.jsonl").read_text().splitlines()]
        path = args.out / "ablation.jsonl"
        have = {json.dumps({k: r[k] for k in KEY}) for r in map(json.loads, path.read_text().splitlines())} if path.exists() else set()
        cells = [{k: r[k] for k in KEY} for r in done_rows if r["arch"] == "qbottleneck" and r["noise"] == "pseudo"]
        cells = [c for c in cells if json.dumps(c) not in have]

        def one_ablation(c):
            row = ablate(c, args)
            with open(path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(cell_name(c), f"depolarized FID {row['fid']:.1f}", flush=True)

        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(one_ablation, cells))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = {(*(r[k] for k in KEY), r["arch"]) for r in map(json.loads, results.read_text().splitlines())} if results.exists() else set()
    todo = [(c, tuple(a for a in archs_of(c) if (*c.values(), a) not in done)) for c in grid(args.seeds)]
    todo = [(c, archs) for c, archs in todo if archs]
    print(f"{len(todo)} cells to run ({len(done)} models done)", flush=True)

    def one(item):
        c, archs = item
        try:
            rows = run_cell(c, args, archs)
        except subprocess.CalledProcessError as exc:  # reported, and the other cells go on
            print(f"{cell_name(c)} failed: {' '.join(exc.cmd[2:5])} ... (see its log.txt)", flush=True)
            return
        with open(results, "a") as fh:  # one line per model, appended whole
            fh.write("".join(json.dumps(r) + "\n" for r in rows))
        print(cell_name(c), " ".join(f"{r['arch']} FID {r['fid']:.1f}" for r in rows), flush=True)

    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(one, todo))


if __name__ == "__main__":
    main()
