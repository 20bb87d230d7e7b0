#!/usr/bin/env bash
# The paper's whole protocol (De Falco et al. 2024, section 4): every architecture for 20 epochs on MNIST and
# Fashion-MNIST, 7,000 DDPM samples each evaluated against the training set, and transfer learning
# (classical 19 + 1FQConv 1 on MNIST, 18 + 2 on Fashion-MNIST, with the classical-to-classical control).
# Needs days on a 2-core CPU (docs/performance.md); meant for a machine that has the time or a GPU.
#   DATA=../shared/data OUT=runs/paper bash scripts/paper_protocol.sh
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/paper}
SAMPLER=${SAMPLER:-ddpm}
NUM=${NUM:-7000}
ARCHS=${ARCHS:-"classical 1hqconv 7hqconv fullhqconv 1fqconv 7fqconv fullfqconv quanv"}

train_eval() {  # dataset run-name train-args...
  local ds=$1 name=$2; shift 2
  local dir="$OUT/$ds/$name"
  if [ -f "$dir/checkpoint.pt" ]; then resume=--resume; else resume=; fi
  nisqdiff train --dataset "$ds" --data-dir "$DATA" --out "$dir" $resume "$@"
  nisqdiff evaluate --checkpoint "$dir/checkpoint.pt" --num "$NUM" --sampler "$SAMPLER" --data-dir "$DATA" \
    --out "$dir/metrics_eval.json"
}

for ds in mnist fashion-mnist; do
  for arch in $ARCHS; do
    train_eval "$ds" "$arch" --arch "$arch" --epochs 20
  done
  if [ "$ds" = mnist ]; then pre=19; post=1; else pre=18; post=2; fi
  train_eval "$ds" "classical-$pre" --arch classical --epochs "$pre"
  train_eval "$ds" "transfer-1fqconv-$pre+$post" --arch 1fqconv --epochs "$post" --init-from "$OUT/$ds/classical-$pre/checkpoint.pt"
  train_eval "$ds" "transfer-classical-$pre+$post" --arch classical --epochs "$post" --init-from "$OUT/$ds/classical-$pre/checkpoint.pt"
done
