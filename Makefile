# The two commands of the README: `make run` (the whole job on the bundled sample data) and
# `make test`. Both create .venv and install the project first; both are safe to re-run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUNS := runs
CORPUS := $(RUNS)/sample-corpus

.PHONY: setup run test docs test-fast browser lint bench gpu-check ui clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), f"Python >= 3.10 needed, found {sys.version}"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Everything make run writes stays under runs/, its MLflow store included.
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/$(RUNS)/mlflow.db

SAMPLE := $(RUNS)/sample

# runs/make-run.started and .finished time the job (install excluded), runs/make-run.stages each
# command of it (a name and the time it ended), for benchmarks/make_run.py.
stage = @echo "$(1) $$(date +%s.%N)" >> $(RUNS)/make-run.stages

run: setup
	@mkdir -p $(RUNS) && rm -f $(RUNS)/make-run.finished $(RUNS)/make-run.stages && date +%s > $(RUNS)/make-run.started
	$(call stage,start)
	$(BIN)/deepspeech data sample $(CORPUS)
	$(call stage,corpus)
	$(BIN)/deepspeech train --config experiments/sample.yaml
	$(call stage,train)
	tail -n +2 $(CORPUS)/train.csv | cut -d, -f3 > $(SAMPLE)/train-text.txt
	$(BIN)/deepspeech lm build --text $(SAMPLE)/train-text.txt --order 3 --output $(SAMPLE)/lm.arpa
	$(call stage,lm)
	$(BIN)/deepspeech export --checkpoint-dir $(SAMPLE)/checkpoints --output $(SAMPLE)/model.onnx
	$(call stage,export)
	$(BIN)/deepspeech evaluate --checkpoint-dir $(SAMPLE)/checkpoints --test-files $(CORPUS)/test.csv --decoder beam --lm $(SAMPLE)/lm.arpa --report-count 0 --json $(SAMPLE)/beam-report.json
	$(call stage,evaluate)
	$(BIN)/deepspeech transcribe --model $(SAMPLE)/model.onnx --manifest $(CORPUS)/test.csv
	$(call stage,transcribe)
	@date +%s > $(RUNS)/make-run.finished
	@echo "Serve the model: $(BIN)/deepspeech serve --model $(SAMPLE)/model.onnx   Compare runs: make ui"

ui: setup
	mkdir -p $(RUNS)
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --workers 1 --backend-store-uri $(MLFLOW_TRACKING_URI)

# Test tiers: `make test` runs all (~17 min of tests on 2 cores); `make test-fast` skips slow-marked (~5 min).
test: setup browser
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" -q

# tests/test_web_page.py drives Debian's headless Chromium; as root with apt-get it is installed
# here, otherwise this says what to install (and that test fails with the same message).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "The browser test needs Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver"; \
	fi

# docs/settings.md from the settings classes (tests/test_options.py fails when it is stale).
docs: setup
	$(BIN)/python -c 'from deepspeech.cli.options import write_settings_document; write_settings_document()'

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every benchmark in benchmarks/, one after another; rewrites benchmarks/RESULTS.md (~40 min).
bench: setup
	$(BIN)/python benchmarks/run_all.py

# On a CUDA machine: install the project with its one CUDA 12 stack (.[gpu] only, not the dev
# extras: it runs no tests) into .venv, then train, export and serve the n_hidden 2048 model on
# the GPUs and write RESULTS.md's GPU section (<= 8 min, plus the kernels' first-use
# compilation where TensorFlow has no machine code for the GPU, cached in runs/cuda-cache).
# Elsewhere it says in one line that there is no GPU, and stops (the probe needs only Python).
gpu-check:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), f"Python >= 3.10 needed, found {sys.version}"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python benchmarks/gpu.py --probe; then \
		$(BIN)/python -m pip install --quiet --upgrade pip && \
		$(BIN)/python -m pip install --quiet -e '.[gpu]'; \
	fi
	@$(BIN)/python benchmarks/gpu.py

clean:
	rm -rf $(RUNS) mlruns mlflow.db .pytest_cache .ruff_cache
