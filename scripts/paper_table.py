"""The paper's Table 1 or 2 beside the zoo's evaluated 20-epoch models, and whether its ordering survives.

    python scripts/paper_table.py --dataset mnist [--out docs/protocol/table2-mnist.json]

Reads every zoo card of ``--dataset`` that holds a 7,000-image evaluation (``metrics``, written by
``scripts/zoo_card.py --metrics``) and prints a Markdown table: per model the paper's FID / KID / IS
(De Falco et al. 2024, Table 2 for MNIST, Table 1 for Fashion-MNIST, Inception backbone), ours (classifier
backbone, FID with its 95% bootstrap interval) and, for each hybrid, the paper's FID difference to classical
beside ours. Ours is measured against the classical seeds: the difference to their mean FID, and two checks
of the paper's claim that the hybrid is better (lower FID) or worse than classical:

- ``interval``: the hybrid's FID interval lies wholly below (better) or above (worse) every classical
  seed's interval; otherwise the intervals overlap and the data cannot order the two;
- ``seed spread``: the hybrid's FID lies outside the range of the classical seeds' FIDs, on the side
  the paper claims; a difference inside that range is no larger than retraining the same architecture
  with another seed.

Absolute values of the two backbones are not comparable; only the signs and relative sizes of the
differences are. The intervals are per model (bootstrap over each model's own images), not paired.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nisqdiff.files import atomic_write_text
from nisqdiff.model_zoo import card, names

# De Falco et al. 2024, Tables 1 (Fashion-MNIST) and 2 (MNIST): FID, KID mean, KID std, IS mean, IS std at
# epoch 20, Inception backbone; "transfer" is classical 19 epochs then 1FQConv 1 epoch (18 + 2 for Fashion).
PAPER = {
    "mnist": {
        "classical": (45.2762, 0.0558, 0.0014, 1.9152, 0.0355),
        "1hqconv": (45.3710, 0.0556, 0.0015, 1.9090, 0.0325),
        "7hqconv": (43.0731, 0.0523, 0.0015, 1.9256, 0.0205),
        "fullhqconv": (45.6503, 0.0559, 0.0015, 1.9053, 0.0283),
        "quanv": (44.5144, 0.0545, 0.0015, 1.9284, 0.0425),
        "transfer": (41.6646, 0.0493, 0.0013, 1.9556, 0.0335),
    },
    "fashion-mnist": {
        "classical": (39.4563, 0.0275, 0.0008, 3.9783, 0.0777),
        "1hqconv": (39.9935, 0.0278, 0.0008, 3.9787, 0.0550),
        "7hqconv": (40.3685, 0.0281, 0.0009, 3.8158, 0.1360),
        "fullhqconv": (41.3882, 0.0294, 0.0009, 3.8019, 0.0744),
        "quanv": (38.8, 0.0269, 0.0007, 3.9087, 0.1485),
        "transfer": (38.6835, 0.0261, 0.0007, 4.0527, 0.0890),
    },
}


def fail(message: str) -> None:
    """Bad input: one line on stderr and exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def paper_column(c: dict) -> str | None:
    """The paper's column for a card: its architecture, ``transfer`` for 1FQConv trained from a classical
    model, None for the classical-to-classical transfer control (not in the paper's tables)."""
    if c.get("init_from"):
        return "transfer" if c["arch"] == "1fqconv" else None
    return c["arch"] if c["arch"] in PAPER["mnist"] else None


def verdict(claim: float, ours: dict, classical: list[dict]) -> dict:
    """Does the paper's sign of (hybrid - classical) FID survive our intervals and our classical seeds'
    spread? ``claim``: the paper's difference; ``ours``: {fid, ci}; ``classical``: the seeds' {fid, ci}."""
    lo, hi = ours["ci"]
    fids = [c["fid"] for c in classical]
    if claim < 0:
        interval = hi < min(c["ci"][0] for c in classical)
        spread = ours["fid"] < min(fids)
    else:
        interval = lo > max(c["ci"][1] for c in classical)
        spread = ours["fid"] > max(fids)
    return {"paper_says": "better" if claim < 0 else "worse", "survives_interval": interval,
            "survives_seed_spread": spread}  # fmt: skip


def build(dataset: str) -> dict:
    """Rows for every evaluated zoo model of ``dataset``, the classical seeds' spread and the verdicts."""
    paper = PAPER[dataset]
    rows = []
    for name in names():
        c = card(name)
        m = c.get("metrics")
        if c.get("dataset") != dataset or not m:
            continue
        rows.append({"model": name, "column": paper_column(c), "seed": c.get("seed"), "epochs": c.get("epochs"),
                     "fid": m["fid"], "ci": m["fid_95ci"], "kid": [m["kid_mean"], m["kid_std"]],
                     "is": [m["is_mean"], m["is_std"]], "images": m["images"], "backbone": m["backbone"]})  # fmt: skip
    order = list(paper) + [None]  # the paper's column order, then the controls
    rows.sort(key=lambda r: (order.index(r["column"]), r["model"]))
    classical = [r for r in rows if r["column"] == "classical"]
    result = {"dataset": dataset, "paper": paper, "rows": rows,
              "classical_seeds": [r["model"] for r in classical]}  # fmt: skip
    if classical:
        mean = sum(r["fid"] for r in classical) / len(classical)
        result["classical_fid_mean"] = mean
        result["classical_fid_range"] = [min(r["fid"] for r in classical), max(r["fid"] for r in classical)]
        for r in rows:
            if r["column"] not in (None, "classical"):
                claim = paper[r["column"]][0] - paper["classical"][0]
                r.update(paper_minus_classical=claim, ours_minus_classical_mean=r["fid"] - mean)
                r.update(verdict(claim, r, classical))
    return result


def markdown(result: dict) -> str:
    paper = result["paper"]
    lines = ["| model | paper FID / KID / IS (Inception) | ours: FID (classifier) [95%] / KID / IS | "
             "FID - classical: paper / ours | paper's sign survives: interval / seed spread |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        col = r["column"]
        p = paper.get(col) if col else None
        ptxt = f"{p[0]:.2f} / {p[1]:.4f} ± {p[2]:.4f} / {p[3]:.3f} ± {p[4]:.3f}" if p else "(not in the paper)"
        ours = (f"{r['fid']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] / {r['kid'][0]:.1f} ± {r['kid'][1]:.1f} / "
                f"{r['is'][0]:.2f} ± {r['is'][1]:.2f}")  # fmt: skip
        diff = verdict_txt = ""
        if "paper_minus_classical" in r:
            diff = f"{r['paper_minus_classical']:+.2f} / {r['ours_minus_classical_mean']:+.2f}"
            yes = {True: "yes", False: "no"}
            verdict_txt = (f"{r['paper_says']}: {yes[r['survives_interval']]} / "
                           f"{yes[r['survives_seed_spread']]}")  # fmt: skip
        label = f"`{r['model']}` ({col or 'control'}, seed {r['seed']})"
        lines.append(f"| {label} | {ptxt} | {ours} | {diff} | {verdict_txt} |")
    if "classical_fid_range" in result:
        lo, hi = result["classical_fid_range"]
        lines.append("")
        lines.append(f"Classical seeds ({', '.join(result['classical_seeds'])}): FID {lo:.2f} to {hi:.2f}, "
                     f"mean {result['classical_fid_mean']:.2f}.")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist", choices=tuple(PAPER))
    ap.add_argument("--out", default=None, help="also write the table's data as JSON")
    args = ap.parse_args()
    result = build(args.dataset)
    if not result["rows"]:
        fail(f"no {args.dataset} zoo model has a 7,000-image evaluation yet; add one with "
                 "scripts/zoo_card.py --metrics")  # fmt: skip
    print(markdown(result))
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
