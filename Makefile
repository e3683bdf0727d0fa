# Fresh machine: `make quickstart` or `make test`; each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install quickstart test test-fast throughput throughput-cpu throughput-host compare-st gpu-wheels \
	gpu-wheels-stack clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,quickstart]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

quickstart: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/embedkit quickstart

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

throughput: $(STAMP)
	$(BIN)/python eval/throughput.py --small

# The README's CPU figures (ModernBERT-base, fp32 and bf16 rows, MNRL steps, embedkit index), ~9 min on 2 idle cores.
throughput-cpu: $(STAMP)
	$(BIN)/python eval/throughput.py --configs base --sets short-variable --num-docs 48 \
		--skip st_encode_b256 hf_sdpa_sorted --cpu-bf16 --repeats 3 --train-batch 8 --train-steps 8 \
		--gradcache-batch 0 --index-docs 48

# The host pipeline alone (read, tokenise, pack, pinned copy) vs the raw tokenizer, on real text; ~1 min.
throughput-host: $(STAMP)
	$(BIN)/python eval/throughput.py --host-only

# embedkit eval of the packaged MiniLM, fp32 and bf16, vs sentence-transformers exact search; ~12 min on 2 cores.
compare-st: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python eval/compare_st.py --docs 10000 --queries 500 --bf16

# cp312 wheels for eval/gpu_session.sh on a GPU machine that has torch, transformers and sentence-transformers but
# not the rest of what the check imports; gpu-wheels-stack adds the lower-end stack to run it on instead.
GPU_WHEELS := faiss-cpu pytest pluggy iniconfig
GPU_STACK_WHEELS := transformers==5.3.0 tokenizers==0.22.2 sentence-transformers==5.3.0
GPU_PIP_DOWNLOAD = $(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl
gpu-wheels:
	$(GPU_PIP_DOWNLOAD) $(GPU_WHEELS)

gpu-wheels-stack: gpu-wheels
	$(GPU_PIP_DOWNLOAD) $(GPU_STACK_WHEELS)

clean:
	rm -rf $(VENV) runs indexes .pytest_cache
