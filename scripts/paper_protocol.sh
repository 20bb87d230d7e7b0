#!/usr/bin/env bash
# The paper's protocol (De Falco et al. 2024, section 4) as docs/reproduction.md runs it, on MNIST: every
# architecture for 20 epochs, the classical one with three seeds, transfer learning (classical 19 epochs, then
# 1FQConv for 1 epoch, with the classical-to-classical 19 + 1 control), 7,000 DDIM-100 images per model scored
# against the training set (classifier backbone, 95% bootstrap interval of FID), and for every hybrid the
# circuit-influence table and FID with every circuit output replaced by 0 against its noiseless FID, paired.
#
# Every stage resumes: run the same line again after an interruption (a training continues from its last
# checkpoint, a sampling run from its last finished batch; finished stages are skipped). Days on a 2-core CPU
# (docs/performance.md); two runs side by side with THREADS=1 use both cores best.
#   DATA=../shared/data OUT=runs/protocol RUNS="classical-s2 1hqconv-s0" bash scripts/paper_protocol.sh
#   STAGES="sample evaluate" RUNS=classical-s0 bash scripts/paper_protocol.sh
#   STAGES=study RUNS="fullhqconv-s0 quanv-s0" bash scripts/paper_protocol.sh   # the noise study, $dir/study
#     (it starts from the influence stage's noiseless and depolarized images, the same study's first two settings)
# RUNS: ARCH-sSEED names (or transfer-1fqconv-s1 / transfer-classical-s1: 1 epoch from classical-s1 at
# epoch 19, which trains classical-s1 to 19 epochs first and keeps that checkpoint as classical-s1-19.pt).
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/protocol}
DATASET=${DATASET:-mnist}
THREADS=${THREADS:-1}
NUM=${NUM:-7000}
STEPS=${STEPS:-100}
CKPT_MINUTES=${CKPT_MINUTES:-15}  # a training also checkpoints mid-epoch every 15 minutes: a kill loses less
STUDY_NUM=${STUDY_NUM:-1000}  # images per setting of the depolarized comparison (DDIM-20)
STAGES=${STAGES:-"train sample evaluate influence"}
# the noise study (STAGES=study): exact noisy emulation (binomial shot noise on exact noisy marginals) of
# two calibrated devices at 0.5, 1 and 2 times their error rates, with readout mitigation and ZNE at 1x
STUDY_DEVICES=${STUDY_DEVICES:-"noiseless,depolarized,shots:128,shots:1024,shots:8192,\
emulator:fake_sherbrooke@0.5+exact,emulator:fake_sherbrooke@1+exact,emulator:fake_sherbrooke@2+exact,\
emulator:fake_torino@0.5+exact,emulator:fake_torino@1+exact,emulator:fake_torino@2+exact,\
emulator:fake_sherbrooke@1+exact+readout,emulator:fake_sherbrooke@1+exact+zne,\
emulator:fake_torino@1+exact+readout,emulator:fake_torino@1+exact+zne"}
export OMP_NUM_THREADS=$THREADS  # sample, evaluate and report take torch's thread count from it
RUNS=${RUNS:-"classical-s0 classical-s1 classical-s2 1hqconv-s0 7hqconv-s0 fullhqconv-s0 quanv-s0 transfer-1fqconv-s1 transfer-classical-s1"}

has_stage() { [[ " $STAGES " == *" $1 "* ]]; }

train() {  # folder epochs train-args...
  local dir=$1 epochs=$2; shift 2
  if [ -f "$dir/checkpoint.pt" ]; then
    nisqdiff train --resume --epochs "$epochs" --threads "$THREADS" --checkpoint-minutes "$CKPT_MINUTES" --data-dir "$DATA" \
      --out "$dir"
  else
    rm -rf "$dir"  # a run killed before its first checkpoint: start it again
    nisqdiff train --dataset "$DATASET" --epochs "$epochs" --threads "$THREADS" --checkpoint-minutes "$CKPT_MINUTES" \
      --data-dir "$DATA" --out "$dir" "$@"
  fi
}

classical_at_19() {  # seed: classical-sSEED trained to epoch 19 and that checkpoint kept, for transfer learning
  local dir="$OUT/$DATASET-classical-s$1"
  if [ ! -f "$dir-19.pt" ]; then
    train "$dir" 19 --arch classical --seed "$1"
    cp "$dir/checkpoint.pt" "$dir-19.pt.tmp" && mv "$dir-19.pt.tmp" "$dir-19.pt"
  fi
}

for run in $RUNS; do
  dir="$OUT/$DATASET-$run"
  seed=${run##*-s}
  base=${run%-s*}
  if has_stage train; then
    case $base in
      transfer-*)
        classical_at_19 "$seed"
        train "$dir" 1 --arch "${base#transfer-}" --seed "$seed" --init-from "$OUT/$DATASET-classical-s$seed-19.pt" ;;
      classical)
        if [ "$seed" = 1 ]; then classical_at_19 1; fi
        train "$dir" 20 --arch classical --seed "$seed" ;;
      *) train "$dir" 20 --arch "$base" --seed "$seed" ;;
    esac
  fi
  samples="$dir/eval-ddim$STEPS"
  if has_stage sample && [ ! -f "$samples/samples.pt" ]; then
    if [ -f "$samples/manifest.json" ]; then
      nisqdiff sample --resume "$samples"
    else
      nisqdiff sample --checkpoint "$dir/checkpoint.pt" --num "$NUM" --sampler ddim --steps "$STEPS" --out "$samples"
    fi
  fi
  if has_stage evaluate && [ ! -f "$samples/metrics.json" ]; then
    nisqdiff evaluate --samples "$samples/samples.pt" --bootstrap 100 --data-dir "$DATA" --out "$samples/metrics.json"
  fi
  if has_stage influence && [ "$(python -c "from nisqdiff.models import build_model; print(int(bool(build_model('${base#transfer-}').circuits())))")" = 1 ]; then
    if [ ! -f "$dir/circuit_influence.txt" ]; then
      python scripts/circuit_influence.py --checkpoint "$dir/checkpoint.pt" --data-dir "$DATA" > "$dir/circuit_influence.txt.tmp"
      mv "$dir/circuit_influence.txt.tmp" "$dir/circuit_influence.txt"
    fi
    # FID without the circuits against with them: the same seeds, DDIM-20 (a study resumes by itself)
    if [ ! -f "$dir/depolarized/noiseless-vs-depolarized.json" ]; then
      nisqdiff report --checkpoint "$dir/checkpoint.pt" --devices noiseless,depolarized --num "$STUDY_NUM" --steps 20 \
        --data-dir "$DATA" --out "$dir/depolarized"
      python scripts/compare_settings.py --study "$dir/depolarized" --a noiseless --b depolarized --data-dir "$DATA" \
        --out "$dir/depolarized/noiseless-vs-depolarized.json"
    fi
  fi
  # the noise study of issue 13 (not a default stage: for the hybrids whose circuits matter)
  if has_stage study && [ ! -f "$dir/study/report.md" ]; then
    if [ ! -e "$dir/study" ] && [ -f "$dir/depolarized/study.json" ]; then
      # the same study's first two settings (same model, seeds, images, steps): start from them, not again
      rm -rf "$dir/study.tmp" && mkdir "$dir/study.tmp" && cp -r "$dir/depolarized/study.json" "$dir/depolarized/settings" "$dir/study.tmp/"
      mv "$dir/study.tmp" "$dir/study"
    fi
    nisqdiff report --checkpoint "$dir/checkpoint.pt" --devices "$STUDY_DEVICES" --num "$STUDY_NUM" --steps 20 \
      --data-dir "$DATA" --out "$dir/study"
  fi
done
