#!/usr/bin/env bash
# One short check of a machine with a GPU (issue 12): CUDA parity tests, the three benchmarks on CUDA, and a
# 200-step training with a sample grid. Run from the repository root with the project installed:
#   bash scripts/gpu_check.sh [OUT]          (OUT default runs/gpu_check; everything it prints lands in OUT/log.txt)
set -euo pipefail
OUT=${1:-runs/gpu_check}
DATA=${DATA:-../shared/data}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
python -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))"
python -m pytest -q tests/test_cuda.py
python scripts/bench_circuits.py --torch-device cuda --batch 6272 --no-pennylane
python scripts/bench_train.py --torch-device cuda --archs classical,1hqconv,7hqconv,fullhqconv,quanv,qbottleneck --repeats 5
python scripts/bench_train.py --torch-device cuda --archs classical,1hqconv --repeats 5 --no-amp
python scripts/bench_emulator.py --torch-device cuda --calibration fake_sherbrooke --n 256,4096 --aer-inputs 1
nisqdiff train --arch 1hqconv --torch-device cuda --max-steps 200 --grid-images 16 --data-dir "$DATA" --out "$OUT/train" --overwrite
ls "$OUT/train"
