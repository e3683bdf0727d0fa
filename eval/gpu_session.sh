#!/usr/bin/env bash
# The whole GPU check of the packed forward in one call of at most 8 minutes, cold start included:
#
#   bash eval/gpu_session.sh [--dry-run] [OUT_DIR] [large]     # OUT_DIR default: $OUT, else eval/results
#
# 1. versions, GPU and attention kernels found (gpu-versions.txt);
# 2. the GPU tests (-m gpu): packed and compiled forward vs HF in bf16 and fp32, gradients, no recompilation
#    (gpu-tests.log);
# 3. eval/throughput.py for ModernBERT-base: sentence-transformers encode (batch 32) vs embedkit's packed encode on
#    short and long variable-length inputs, `embedkit index` in fresh processes at steady state (a start-up run,
#    then a corpus sized to take --index-seconds at the measured encode rate), MNRL training steps with and
#    without the packed forward. Every row is written to OUT_DIR/throughput-<gpu>-base.json as
#    soon as it is measured (throughput-base.log has the rest), so a run cut short keeps what it measured.
# `large` adds the same for ModernBERT-large (only on request: it does not fit the 8 minutes with base).
# Each step gets what is left of the budget (EMBEDKIT_GPU_BUDGET seconds, default 470) and is skipped when too
# little is left.
#
# It runs on the machine's own torch / transformers / sentence-transformers. Wheels in .whl/ (`make gpu-wheels`:
# faiss-cpu and pytest, cp312) are installed into a scratch folder first, only those whose package is missing;
# EMBEDKIT_GPU_STACK=wheels installs all of them ahead of the machine's (for the carried lower-end stack of
# `make gpu-wheels-stack`). --dry-run does the same steps on CPU-sized inputs (the GPU tests skip themselves).
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
out=${1:-${OUT:-eval/results}}
shift || true
configs=(base "$@")
budget=${EMBEDKIT_GPU_BUDGET:-470}
mkdir -p "$out"
python=${PYTHON:-python3}
site=${EMBEDKIT_GPU_SITE:-/tmp/embedkit-gpu-site}
if compgen -G ".whl/*.whl" >/dev/null; then
    wheels=()
    for wheel in .whl/*.whl; do
        dist=$(basename "$wheel" | cut -d- -f1)
        if [ "${EMBEDKIT_GPU_STACK:-device}" = wheels ] || \
                ! "$python" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$dist" 2>/dev/null; then
            wheels+=("$wheel")
        fi
    done
    if [ ${#wheels[@]} -gt 0 ]; then
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
            "${wheels[@]}" || exit 1
        export PYTHONPATH=$site
    fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
left() { echo $(( budget - SECONDS )); }
status=0

"$python" - <<'PY' 2>&1 | tee "$out/gpu-versions.txt"
import torch, transformers, sentence_transformers, tokenizers
from embedkit.models.packed import KERNELS
from embedkit.models.precision import cpu_bf16_features, cpu_name
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print("torch", torch.__version__, "| transformers", transformers.__version__, "| sentence-transformers",
      sentence_transformers.__version__, "| tokenizers", tokenizers.__version__, "|", gpu)
print(" | ".join(f"{name}: {kernel.available()}" for name, kernel in KERNELS.items()),
      "| CPU:", cpu_name(), "| CPU bf16:", ",".join(cpu_bf16_features()) or "none")
PY

limit=$(( $(left) < 120 ? $(left) : 120 ))
timeout "$limit" "$python" -m pytest -q -m gpu -p no:cacheprovider tests/models 2>&1 | tee "$out/gpu-tests.log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 5 ] && rc=0  # no test collected: the --dry-run without a GPU
[ "$rc" -eq 124 ] && echo "gpu tests cut at ${limit}s"
echo "gpu tests rc=$rc"
status=$(( status || rc ))

for config in "${configs[@]}"; do
    if [ "$(left)" -lt 60 ]; then
        echo "throughput $config skipped: $(left)s left of ${budget}s"
        status=1
        continue
    fi
    if [ $dry -eq 1 ]; then
        sizes=(--small --num-docs 24 --num-long-docs 4 --train-steps 1 --train-batch 8 --index-docs 24)
    else
        case $config in  # large is ~3x slower than base per token
            large) sizes=(--num-docs 2048 --num-long-docs 64 --index-seconds 40) ;;
            *) sizes=(--num-docs 4096 --num-long-docs 128 --index-seconds 45) ;;
        esac
        sizes+=(--configs "$config")
    fi
    # leave 15 s for the index run's start-up margin and the summary
    timeout "$(( $(left) - 15 ))" "$python" eval/throughput.py --out "$out" "${sizes[@]}" \
        --sets short-variable long-variable --skip st_encode_b256 hf_sdpa_sorted --gradcache-batch 0 \
        --repeats 2 2>&1 | tee "$out/throughput-$config.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] && echo "throughput $config cut short at the budget; the rows measured so far are in the JSON"
    echo "throughput $config rc=$rc"
    status=$(( status || rc ))
done
echo "gpu session: rc=$status in ${SECONDS}s (budget ${budget}s); results in $out"
exit "$status"
