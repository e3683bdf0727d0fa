#!/usr/bin/env bash
# Issue 5's GPU check in one `device` call: the GPU equivalence tests, then eval/throughput.py.
#
#   here:    make gpu-wheels                  # cp312 wheels of the pinned transformers / tokenizers /
#                                             # sentence-transformers into .whl/ (git-ignored)
#   device:  bash eval/gpu_session.sh base    # run with carry [".whl"]; then again with `large`
#
# The first argument is the model config; any others go to eval/throughput.py.
# Logs and the throughput JSON go to $OUT (the device tool brings them back), else eval/results/.
set -uo pipefail
config=${1:-base}
shift || true
out=${OUT:-eval/results}
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
python3 -m pytest -q -m gpu -p no:cacheprovider tests/models/test_modernbert_unpadded.py 2>&1 | tee "$out/gpu-tests.log"
tests=${PIPESTATUS[0]}
python3 eval/throughput.py --configs "$config" --out "$out" "$@" 2>&1 | tee "$out/throughput-$config.log"
bench=${PIPESTATUS[0]}
echo "gpu tests rc=$tests, throughput rc=$bench"
exit $(( tests || bench ))
