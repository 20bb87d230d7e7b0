"""Train the classifier backbone used for FID/KID/IS and store it in the package.

    python scripts/train_backbone.py --dataset mnist --data-dir ../shared/data
    python scripts/train_backbone.py --dataset fashion-mnist --data-dir ../shared/data --epochs 6

Writes nisqdiff/backbones/<dataset>.pt (state dict) and <dataset>.json (test accuracy on the
10,000 test images, epochs, seed, command, SHA-256 of the weights file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from nisqdiff.files import atomic_save, atomic_write_text
from nisqdiff.data import load_images
from nisqdiff.metrics import Classifier, backbone_dir


def accuracy(net: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return (pred == y).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(backbone_dir()))
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    x, y = load_images(args.dataset, "train", args.data_dir)
    xt, yt = load_images(args.dataset, "test", args.data_dir)
    net = Classifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = args.epochs * (len(x) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    t0 = time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x))
        for i in range(len(x) // args.batch_size):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            xb = x[idx]
            shift = torch.randint(-2, 3, (2,)).tolist()  # small translations
            xb = torch.roll(xb, shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy(net, xt, yt):.4f}", flush=True)
    acc = accuracy(net, xt, yt)
    out = Path(args.out)
    atomic_save(net.state_dict(), out / f"{args.dataset}.pt")
    record = {
        "dataset": args.dataset,
        "architecture": "Classifier (nisqdiff.metrics): 4 conv 3x3 + 2 max-pool + Linear(3136,128) + Linear(128,10)",
        "test_accuracy": round(acc, 4),
        "test_images": len(xt),
        "epochs": args.epochs,
        "seed": args.seed,
        "train_seconds": round(time.time() - t0, 1),
        "date": date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
        "sha256": hashlib.sha256((out / f"{args.dataset}.pt").read_bytes()).hexdigest(),
    }
    atomic_write_text(out / f"{args.dataset}.json", json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
