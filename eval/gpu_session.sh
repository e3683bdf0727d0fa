#!/usr/bin/env bash
# The GPU check in one call, on any machine with a CUDA GPU:
#
#   bash eval/gpu_session.sh [OUT_DIR] [CONFIG ...]     # default: eval/results, base large
#
# 1. versions and the attention kernels found (gpu-versions.txt);
# 2. the GPU tests: packed forward vs HF, compiled forward, gradients, self-check (gpu-tests.log);
# 3. eval/throughput.py once per config (base, large), each a separate process under a 9.5-minute limit, so
#    each fits a 10-minute session; every row is written to OUT_DIR/throughput-<gpu>-<config>.json as soon as
#    it is measured, so a run cut short keeps what it measured (throughput-<config>.log has the rest).
#
# Wheels in .whl/ (`make gpu-wheels`: the pinned transformers / tokenizers / sentence-transformers as cp312
# wheels) are installed first when present, for machines without the project's environment.
set -uo pipefail
out=${1:-${OUT:-eval/results}}
shift || true
configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(base large)
limit=${THROUGHPUT_TIMEOUT:-570}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 - <<'PY' | tee "$out/gpu-versions.txt"
import torch, transformers, sentence_transformers
print("torch", torch.__version__, "| transformers", transformers.__version__,
      "| sentence-transformers", sentence_transformers.__version__,
      "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")
from embedkit.models.packing import flash_attn_available, torch_varlen_available
print("flash_attn:", flash_attn_available(), "| torch varlen_attn:", torch_varlen_available())
PY
timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider tests/models 2>&1 | tee "$out/gpu-tests.log"
status=${PIPESTATUS[0]}
for config in "${configs[@]}"; do
    case $config in  # sizes that fit the limit with sentence-transformers' rows included (large is ~3x slower)
        large) sizes=(--num-docs 2048 --num-long-docs 64 --index-docs 16384 --gradcache-batch 2048) ;;
        *) sizes=() ;;
    esac
    timeout "$limit" python3 eval/throughput.py --configs "$config" --out "$out" "${sizes[@]}" 2>&1 \
        | tee "$out/throughput-$config.log"
    rc=${PIPESTATUS[0]}
    echo "throughput $config rc=$rc (124: cut at ${limit}s, rows measured so far are in the JSON)"
    status=$(( status || rc ))
done
echo "gpu tests and throughput: rc=$status"
exit "$status"
