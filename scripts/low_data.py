"""Issue 15's small-data experiment (Chen et al., arXiv 2504.00034): qbottleneck against its classical twin.

    python scripts/low_data.py --data-dir ../shared/data --out runs/lowdata --workers 2   # run (resumable)
    python scripts/low_data.py --data-dir ../shared/data --out runs/lowdata --ablate        # circuits -> 0
    python scripts/low_data.py --out runs/lowdata --table                                 # the tables

Every cell trains ``qbottleneck`` and ``bottleneck`` with the same seed on the same N MNIST training images
(``--classes 3 --per-class N``: the first N threes, one digit as the paper's code trains; or ``balanced``: the
first N/10 of every digit), for ``--steps`` optimiser steps at batch min(N, 32), then samples 1,000 images
(DDIM, ``--ddim-steps``) and scores them with ``nisqdiff evaluate`` (classifier backbone, against the real
training images of the same classes: all 6,131 threes, or the first 10,000 of all digits when balanced). The grid: the main comparison (one digit, cosine schedule,
pseudo-random noise) at every N, and at N = 10 and 100 the same with quantum-generated noise (a pool drawn
on the emulator at fake_sherbrooke's calibration, used for training and sampling), with the shifted-cosine
schedule, and balanced. Each finished model appends one line to ``OUT/results.jsonl``; a rerun skips them.
``--ablate`` samples every finished qbottleneck of pseudo-random noise again with its circuit's outputs replaced by 0 (the
``depolarized`` device, same seeds) and scores that (``OUT/ablation.jsonl``): a model whose FID does not move
has not shown that it uses its circuit. ``--table`` prints mean and 95% t-interval across seeds of FID, KID,
their paired difference (qbottleneck - bottleneck, same seed) and the ablation's paired FID change.
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

ARCHS = ("qbottleneck", "bottleneck")
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


def run_cell(c: dict, args) -> list[dict]:
    """Train, sample and evaluate both architectures of cell ``c``; returns their result rows."""
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
            bits = len(ARCHS) * (args.steps * batch + sampled) * PIXELS * WORD
            nisqdiff("qrng", "--bits", str(bits), "--out", str(pool), "--device", "emulator", "--calibration",
                     "fake_sherbrooke", "--device-seed", str(c["seed"]), log=log)  # fmt: skip
        noise = ["--noise-source", f"pool:{pool}"]
    sched = ["--schedule", c["schedule"]] + (["--logsnr-shift", "1.65"] if c["schedule"] == "shifted-cosine" else [])
    rows = []
    for arch in ARCHS:
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


def table(out: Path) -> str:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["regime"], r["schedule"], r["noise"], r["n"]), {}).setdefault(r["seed"], {})[r["arch"]] = r
    ablation = {}
    if (out / "ablation.jsonl").exists():
        for r in map(json.loads, (out / "ablation.jsonl").read_text().splitlines()):
            ablation[(r["regime"], r["schedule"], r["noise"], r["n"], r["seed"])] = r
    lines = ["| regime | schedule | noise | N | seeds | FID qbottleneck | FID bottleneck | FID q - c (paired) | "
             "KID q | KID c | KID q - c | FID q circuit->0 minus q (paired) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in sorted(groups, key=lambda k: (k[0] != "one-digit", k[1] != "cosine", k[2] != "pseudo", k[3])):
        pairs = [v for v in groups[key].values() if len(v) == 2]
        if not pairs:
            continue
        cells = []
        for metric in ("fid", "kid_mean"):
            q = t_interval([p["qbottleneck"][metric] for p in pairs])
            c = t_interval([p["bottleneck"][metric] for p in pairs])
            d = t_interval([p["qbottleneck"][metric] - p["bottleneck"][metric] for p in pairs])
            cells += [f"{q[0]:.1f} +- {q[1]:.1f}", f"{c[0]:.1f} +- {c[1]:.1f}", f"{d[0]:+.1f} +- {d[1]:.1f}"]
        abl = [ablation[(*key, s)]["fid"] - p["qbottleneck"]["fid"] for s, p in groups[key].items()
               if len(p) == 2 and (*key, s) in ablation]  # fmt: skip
        cells.append(f"{t_interval(abl)[0]:+.1f} +- {t_interval(abl)[1]:.1f} ({len(abl)})" if abl else "-")
        lines.append(f"| {' | '.join(map(str, key))} | {len(pairs)} | {' | '.join(cells)} |")
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
        have = {json.dumps({k: r[k] for k in ("regime", "n", "schedule", "noise", "seed")}) for r in map(json.loads, path.read_text().splitlines())} \
            if path.exists() else set()  # fmt: skip
        cells = [{k: r[k] for k in ("regime", "n", "schedule", "noise", "seed")} for r in done_rows
                 if r["arch"] == "qbottleneck" and r["noise"] == "pseudo"]  # fmt: skip
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
    done = {(r["regime"], r["n"], r["schedule"], r["noise"], r["seed"]) for r in map(json.loads, results.read_text().splitlines())} \
        if results.exists() else set()  # fmt: skip
    todo = [c for c in grid(args.seeds) if tuple(c.values()) not in done]
    print(f"{len(todo)} cells to run ({len(done)} done)", flush=True)

    def one(c):
        try:
            rows = run_cell(c, args)
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
