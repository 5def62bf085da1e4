# The README's contract: `make demo` and `make test` work on a machine with nothing but Python.
PYTHON ?= python3
VENV   ?= .venv
# CPU wheel by default; override for GPUs, e.g. `make install TORCH=torch`.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-slow lint demo bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: install
	$(BIN)/python -m ruff check timesformer_hf convert tests bench
	$(BIN)/python -m ruff format --check timesformer_hf convert tests bench

demo: install
	$(BIN)/python -m timesformer_hf.demo --output-dir demo-output

bench: install
	$(BIN)/python bench/benchmark.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
