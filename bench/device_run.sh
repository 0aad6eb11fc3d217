#!/usr/bin/env bash
# The one prepared run on a lent GPU machine (H100/H200), from the repository root, with .gpu/ carried:
#   bash bench/device_run.sh [seconds]
# .gpu/ (git-ignored, built by bench/prepare_device.sh) holds what the machine's image lacks: wordfreq and its pure
# Python needs, the real MiniLM-L6 as fp16 safetensors (the carry limit is 64 MiB; restored to fp32 there) and the
# task archives. Stages, each bounded by what is left of the budget, each writing under $OUT as it goes:
#   1. bench/gpu_check.py: CUDA vs CPU agreement, standard-profile scan times (issue: detection engine);
#   2. bench/bench_mitigation.py --part purify on CUDA (POR, NeuBA; 3 tasks x 3 fine-tuning seeds);
#   3. the MiniLM-L6 part of the detection zoo (planted, fine-tuned and scanned on CUDA).
set -u
BUDGET=${1:-580}
START=$(date +%s)
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
left() { echo $((BUDGET - ($(date +%s) - START))); }
export PYTHONPATH=$PWD:$PWD/.gpu/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PATRONUS_DATA_DIR=$PWD/.gpu/data PATRONUS_MINILM_DIR=/tmp/minilm PATRONUS_TEST_CACHE=/tmp/models
exec >"$OUT/run.log" 2>&1
if [ ! -f /tmp/minilm/model.safetensors ]; then
  cp -r .gpu/minilm /tmp/minilm && python3 .gpu/restore_minilm.py /tmp/minilm
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

stage() {  # stage NAME SECONDS COMMAND...: run with a timeout (never beyond the budget)
  local name=$1 want=$2; shift 2
  local t=$(( want < $(left) ? want : $(left) ))
  if [ "$t" -lt 20 ]; then echo "== $name skipped (budget)"; return; fi
  echo "== $name ($t s) at $(date +%T)"
  timeout "$t" "$@"; echo "== $name rc=$? at $(date +%T)"
}

[ -f "$OUT/gpu.json" ] || stage gpu_check 180 python3 bench/gpu_check.py --out "$OUT" --cache /tmp/gpu-models
for attack in por neuba; do
  stage "mitigation $attack" 240 python3 bench/bench_mitigation.py --part purify --attacks "$attack" --device cuda \
    --no-adversarial --results "$OUT"
done
stage "zoo minilm-l6" 100000 python3 -c "
import sys
from pathlib import Path
from scanner.research.zoo import run_bench
run_bench(Path(sys.argv[1]), Path('/tmp/zoo'), [], sys.argv[2].split(','), 1, (6,), 1, 'quick', device='cuda')
" "$OUT/zoo-l6" por,neuba,badpre,uor,adaptive-hide,adaptive-break,adaptive-merge
echo "== done at $(date +%T), $(left) s of the budget left"
