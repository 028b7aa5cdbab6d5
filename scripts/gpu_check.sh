#!/bin/bash
# The GPU checks in one go, each stage under its own time limit, every output under OUT (default ./gpu-check):
#   1. scripts/gpu_throughput.py: the DDPM U-Net's training and sampling throughput, fp32 / bf16 / compile;
#   2. tests/harness/test_gpu.py: no host sync while sampling, bf16 and compiled training, an image sweep on cuda;
#   3. the cifar10 spec, briefly (300 steps, two methods, 1,000 samples, fd) on synthetic CIFAR-format images
#      (scripts/synthetic_cifar.py), end to end with its report.
# Usage: bash scripts/gpu_check.sh [OUT]      (run from the repository root on a machine with CUDA)
set -u
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ uptime; nproc; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
echo "== throughput $(date +%T)"
timeout 230 python3 scripts/gpu_throughput.py --out "$out" --variants fp32,bf16,bf16+compile,fp32+compile \
  > "$out/throughput.log" 2>&1; echo "exit code $?" >> "$out/throughput.log"
tail -8 "$out/throughput.log"
echo "== GPU tests $(date +%T)"; uptime
timeout 130 python3 -m pytest -p no:cacheprovider tests/harness/test_gpu.py -rs --durations=5 \
  > "$out/test_gpu.log" 2>&1; echo "exit code $?" >> "$out/test_gpu.log"
tail -8 "$out/test_gpu.log"
echo "== cifar10, briefly, on synthetic images $(date +%T)"; uptime
data=$(mktemp -d)
python3 scripts/synthetic_cifar.py "$data" > /dev/null
timeout 230 python3 -m odebench run --spec cifar10 --data-dir "$data" --out "$out/runs" --no-progress \
  --set train.steps=300 --set eval.n_samples=1000 --set 'eval.metrics=["fd"]' \
  --set 'methods=[{name="fm_ot"},{name="edm"}]' \
  --set 'solvers=[{name="euler",nfe=[4,16]},{name="edm_heun",nfe=[35],grid=["edm"]}]' \
  > "$out/cifar10.log" 2>&1; echo "exit code $?" >> "$out/cifar10.log"
tail -12 "$out/cifar10.log"
rm -rf "$data"
echo "== done $(date +%T)"; uptime
