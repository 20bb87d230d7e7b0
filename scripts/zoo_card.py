"""Add a trained run to the model zoo, or add measurements to a zoo model's card.

    python scripts/zoo_card.py --run runs/protocol/mnist-1hqconv-s0 --name mnist-1hqconv \\
        --summary "De Falco et al.'s 1HQConv U-Net, the paper's protocol on MNIST (EMA weights, fp32)." \\
        --hardware "1 thread of a 2-core AMD EPYC VM (CPU only), torch 2.13.0+cpu, beside another training"
    python scripts/zoo_card.py --run runs/protocol/mnist-1hqconv-s0 --name mnist-1hqconv \\
        --metrics runs/protocol/mnist-1hqconv-s0/eval-ddim100/metrics.json \\
        --influence runs/protocol/mnist-1hqconv-s0/circuit_influence.txt \\
        --depolarized runs/protocol/mnist-1hqconv-s0/depolarized/noiseless-vs-depolarized.json

The first call exports the run's EMA weights into ``nisqdiff/zoo/NAME/`` (as ``nisqdiff export`` does)
and writes ``card.json`` from the checkpoint: the training command, seed, epochs, steps, precision, final
loss and wall time. Later calls (``--run`` optional: without it, the zoo's own copy is used) keep what the
card holds and add what is given: the 7,000-image evaluation (``nisqdiff evaluate`` metrics), the
circuit-influence table (``scripts/circuit_influence.py``'s output) and the paired noiseless-against-
depolarized FID (``scripts/compare_settings.py --out``). Refuses to replace the weights of an existing zoo
model with another checkpoint's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nisqdiff.checkpoints import load_checkpoint
from nisqdiff.files import atomic_write_text
from nisqdiff.model_zoo import ZOO_DIR
from nisqdiff.pipeline import DiffusionPipeline

NOTE = "classifier-backbone values, not Inception: compare orderings with the paper, not absolute values"


def from_checkpoint(run: Path) -> dict:
    ckpt = load_checkpoint(run / "checkpoint.pt")
    cfg, record = ckpt["config"], ckpt.get("metrics") or {}
    epochs, before = record.get("epoch"), None
    if cfg.get("init_from") and Path(cfg["init_from"]).is_file():  # transfer learning: count the classical epochs too
        before = (load_checkpoint(cfg["init_from"]).get("metrics") or {}).get("epoch")
        epochs = round(before + epochs, 2) if before is not None and epochs is not None else epochs
    return {
        "command": ckpt.get("command"),
        "arch": ckpt["arch"],
        "dataset": cfg["dataset"],
        "seed": cfg["seed"],
        "epochs": epochs,
        "epochs_of_init_from": before,
        "steps": ckpt["step"],
        "batch_size": cfg["batch_size"],
        "precision": "bf16 autocast (the default), fp32 weights" if cfg.get("amp", True) else "fp32 (--no-amp)",
        "init_from": cfg.get("init_from"),
        "final_training_loss": round(record["loss"], 5) if "loss" in record else None,
        "wall_seconds": round(ckpt["wall_time"]),
    }


def from_metrics(path: Path) -> dict:
    m = json.loads(path.read_text())
    s = m["samples"]
    return {
        "command": f"nisqdiff sample --checkpoint CKPT --num {s['num']} --sampler {s['sampler']} --steps {s['steps']} "
                   f"--out DIR, then nisqdiff evaluate --samples DIR/samples.pt --bootstrap {m.get('fid_bootstrap', 0)}",
        "backbone": m["backbone"]["name"],
        "images": m["num_fake"],
        "reference": f"{m['num_real']} {m['dataset']} training images",
        "sampler": f"{s['sampler']} {s['steps']} steps, seed {s['seed']}, {s['precision']}",
        "sampling_seconds": s.get("wall_time_s"),
        "fid": round(m["fid"], 3),
        "fid_95ci": [round(m["fid_ci_low"], 3), round(m["fid_ci_high"], 3)] if "fid_ci_low" in m else None,
        "kid_mean": round(m["kid_mean"], 5),
        "kid_std": round(m["kid_std"], 5),
        "is_mean": round(m["is_mean"], 4),
        "is_std": round(m["is_std"], 4),
        "note": NOTE,
    }


def from_depolarized(path: Path) -> dict:
    c = json.loads(path.read_text())
    return {
        "command": f"nisqdiff report --devices noiseless,depolarized --num {c['num']} --steps {c['steps']}, then "
                   "python scripts/compare_settings.py --a noiseless --b depolarized",
        "images": c["num"],
        "backbone": c["backbone"]["name"],
        "fid_noiseless": round(c["fid_a"], 3),
        "fid_depolarized": round(c["fid_b"], 3),
        "fid_depolarized_minus_noiseless": round(c["fid_b_minus_a"], 3),
        "fid_difference_95ci": [round(v, 3) for v in c["fid_b_minus_a_ci"]],
        "pixel_rmse_to_noiseless": round(c["rmse_b_minus_a"], 5),
        "pixel_rmse_95ci": [round(v, 5) for v in c["rmse_b_minus_a_ci"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="training run folder (its checkpoint.pt); for a new entry, or to check "
                    "that an existing one holds this run's weights")
    ap.add_argument("--name", required=True, help="zoo name, e.g. mnist-1hqconv")
    ap.add_argument("--summary", help="one sentence: what the model is (required for a new entry)")
    ap.add_argument("--hardware", help="where and how it trained (required for a new entry)")
    ap.add_argument("--metrics", type=Path, help="metrics.json of `nisqdiff evaluate`")
    ap.add_argument("--influence", type=Path, help="output of scripts/circuit_influence.py")
    ap.add_argument("--depolarized", type=Path, help="JSON of scripts/compare_settings.py --a noiseless --b depolarized")
    args = ap.parse_args()
    folder = ZOO_DIR / args.name
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    if not card and not (args.run and args.summary and args.hardware):
        sys.exit("a new zoo entry needs --run, --summary and --hardware")
    pipe = DiffusionPipeline.from_pretrained(args.run / "checkpoint.pt" if args.run else folder)
    if not card:
        if (folder / "config.json").exists():
            sys.exit(f"{folder} holds weights without a card; remove it or write its card first")
        pipe.save_pretrained(folder)
        card = {"summary": args.summary, **from_checkpoint(args.run), "hardware": args.hardware,
                "export": f"python scripts/zoo_card.py --run {args.run} --name {args.name}"}  # fmt: skip
        card.setdefault("circuit_influence", "none: the model has no circuits" if not pipe.unet.circuits() else "not measured yet")
    elif args.run and json.loads((folder / "config.json").read_text())["provenance"].get("source_sha256") not in (
        None, pipe.info["sha256"]):
        sys.exit(f"{folder} holds another checkpoint's weights; choose another --name")
    for key, value in (("summary", args.summary), ("hardware", args.hardware)):
        if value:
            card[key] = value
    if args.metrics:
        card["metrics"] = from_metrics(args.metrics)
    if args.influence:
        card["circuit_influence"] = {"command": "python scripts/circuit_influence.py --checkpoint CKPT",
                                     "table": args.influence.read_text().splitlines()}  # fmt: skip
    if args.depolarized:
        card["depolarized"] = from_depolarized(args.depolarized)
    missing = [] if card.get("metrics") else ["the 7,000-image evaluation"]
    if pipe.unet.circuits() and not card.get("depolarized"):
        missing.append("FID with the circuits depolarized")
    card["not_measured"] = ", ".join(missing + ["Inception metrics (no InceptionV3 weights here)"])
    card = {k: v for k, v in card.items() if v is not None}
    atomic_write_text(card_path, json.dumps(card, indent=2) + "\n")
    print(f"{card_path}: {', '.join(card)}")


if __name__ == "__main__":
    main()
