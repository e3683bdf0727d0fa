# Fresh machine: `make quickstart` or `make test`; each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# The second environment: PyLate 1.6 and the older stack it pins (constraints/pylate.txt say why pinned).
PYLATE_VENV := .venv-pylate
PYLATE_BIN := $(PYLATE_VENV)/bin
PYLATE_STAMP := $(PYLATE_VENV)/.installed-$(shell cat pyproject.toml constraints/pylate.txt | cksum | cut -d' ' -f1)

.PHONY: install install-pylate quickstart lint test test-fast test-pylate throughput throughput-cpu throughput-host \
	compare-st st-optimum-env serve-bench infinity-env gpu-wheels gpu-wheels-stack clean wheel-test docs docs-serve reference

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,quickstart]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

$(PYLATE_STAMP): pyproject.toml constraints/pylate.txt
	test -x $(PYLATE_BIN)/python || $(PYTHON) -m venv $(PYLATE_VENV)
	$(PYLATE_BIN)/python -m pip install -q --upgrade pip
	$(PYLATE_BIN)/python -m pip install -q -e '.[dev,pylate]' -c constraints/pylate.txt
	rm -f $(PYLATE_VENV)/.installed-* && touch $@

install-pylate: $(PYLATE_STAMP)

quickstart: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/embedkit quickstart

# ruff (rules in pyproject.toml [tool.ruff]) over the whole tree: embedkit, tests, eval.
lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# The package as users install it: the built wheel (not the checkout) in a fresh virtual environment that borrows
# .venv's torch, `pip check`, then a small `embedkit quickstart` from an empty folder (a few minutes).
wheel-test: $(STAMP)
	$(BIN)/python .ci/wheel_test.py

# The documentation site (mkdocs.yml, docs/): `make docs` builds it into site/ with --strict (a broken link or API
# reference fails), `make docs-serve` previews it; `make reference` regenerates docs/reference/recipe.md.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

reference: $(STAMP)
	$(BIN)/python -c "from embedkit.config import reference_page; print(reference_page(), end='')" > docs/reference/recipe.md

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

# The ColBERT and packed-forward tests again in PyLate's environment; the tests that need both stacks run the
# default environment's Python (EMBEDKIT_ST_PYTHON) as a subprocess, so .venv is installed first.
test-pylate: $(PYLATE_STAMP) $(STAMP)
	HF_HUB_OFFLINE=1 EMBEDKIT_ST_PYTHON=$(abspath $(BIN)/python) $(PYLATE_BIN)/python -m pytest -q -m "colbert or packed"

throughput: $(STAMP)
	$(BIN)/python eval/throughput.py --small

# The README's CPU figures (ModernBERT-base, fp32 and bf16 rows, MNRL steps, embedkit index), ~9 min on 2 idle cores.
throughput-cpu: $(STAMP)
	$(BIN)/python eval/throughput.py --configs base --sets short-variable --num-docs 48 \
		--skip st_encode_b256 hf_sdpa_sorted --cpu-bf16 --repeats 3 --train-batch 8 --train-steps 8 \
		--gradcache-batch 0 --index-docs 48

# eval/serve_bench.py's reference server: Infinity (infinity-emb) in .venv-infinity (it pins numpy<2 and
# sentence-transformers 3); it borrows .venv's torch through a .pth file instead of downloading another.
infinity-env: $(STAMP)
	test -x .venv-infinity/bin/infinity_emb || $(BIN)/python eval/serve_bench.py --setup-infinity

# The README's serving table: embedkit serve next to Infinity at 1, 4, 16, 64 clients
# (about 15 min on an idle 2-core machine, the index included).
serve-bench: infinity-env
	$(BIN)/python eval/serve_bench.py


# The host pipeline alone (read, tokenise, pack, pinned copy) vs the raw tokenizer, on real text; ~1 min.
throughput-host: $(STAMP)
	$(BIN)/python eval/throughput.py --host-only

# sentence-transformers' own ONNX / OpenVINO backends (Optimum: transformers 4.x, constraints/st-optimum.txt) in
# .venv-st-optimum, borrowing .venv's torch; eval/compare_st.py runs those rows with it (--st-python).
st-optimum-env: $(STAMP)
	test -x .venv-st-optimum/bin/python || $(BIN)/python eval/compare_st.py --setup-st-optimum

# every CPU configuration of sentence-transformers and of embedkit on the packaged MiniLM, one process each.
compare-st: $(STAMP) st-optimum-env
	HF_HUB_OFFLINE=1 $(BIN)/python eval/compare_st.py --docs 10000 --queries 500 --st-python .venv-st-optimum/bin/python

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
	rm -rf $(VENV) $(PYLATE_VENV) .venv-infinity .venv-st-optimum runs indexes .pytest_cache
