# The README's contract: `make demo` and `make test` work on a machine with nothing but Python.
PYTHON ?= python3
VENV   ?= .venv
# CPU wheel by default; override for GPUs, e.g. `make install TORCH=torch`.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

# The lowest versions declared in setup.cfg, tested by `make test-min` in their own environment.
# huggingface_hub 1.5's `hf` command imports click, which the current typer no longer brings along.
MIN_PINS := transformers==5.11.0 huggingface_hub==1.5.0 click

.PHONY: install test test-slow test-gpu test-min lint demo bench screenshot dist clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@echo "[1/4] Python environment in $(VENV)/"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[2/4] pip"
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "[3/4] $(TORCH) (about 1 GB for a CUDA build)"
	$(BIN)/python -m pip install --progress-bar on "$(TORCH)"
	@echo "[4/4] timesformer-hf and its test extra (transformers, datasets, av, onnxruntime, ...)"
	$(BIN)/python -m pip install --progress-bar on -e ".[test]"
	touch $@
	@echo "Installed: $(BIN)/timesformer-hf, $(BIN)/python"

test: install
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || test -n "$$CHROMIUM" || \
		echo "Note: the browser test needs Chromium: apt-get install chromium (or set CHROMIUM=/path/to/chrome)."
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m "not cuda"

test-gpu: install
	$(BIN)/python -m pytest -q -m "cuda"

test-min:
	test -x .venv-min/bin/python || $(PYTHON) -m venv .venv-min
	.venv-min/bin/python -m pip install -q --upgrade pip
	.venv-min/bin/python -m pip install -q "$(TORCH)"
	.venv-min/bin/python -m pip install -q -e ".[test]" $(MIN_PINS)
	.venv-min/bin/python -m pytest -q

lint: install
	$(BIN)/python -m ruff check timesformer_hf convert tests bench
	$(BIN)/python -m ruff format --check timesformer_hf convert tests bench

demo: install
	$(BIN)/python -m timesformer_hf.demo --output-dir demo-output

bench: install
	$(BIN)/python bench/benchmark.py

# docs/app.png, the README's picture of `timesformer-hf app`: taken by the browser test (needs Chromium)
screenshot: install
	APP_SCREENSHOT=$(CURDIR)/docs/app.png $(BIN)/python -m pytest -q tests/features/test_web_app.py -k browser

# The sdist and the wheel, into dist/: `pip install dist/timesformer_hf-*.whl` installs the package elsewhere.
dist: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) .venv-min demo-output .pytest_cache dist build
