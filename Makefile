# Two commands on a fresh machine: `make run` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 2
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run pull test test-slow test-all venv dvc-yaml mlflow-ui clean

venv: $(STAMP)

# Pinned install: ranges live in pyproject.toml, exact versions (torch 2.14.1, torchvision 0.29.1, ...)
# in requirements/lock.txt, applied as pip constraints.
$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e '.[pipeline,dev,faces]'
	touch $@

# Snakemake runs the DAG (profiles/default: rerun-incomplete; a stale lock of a killed run is cleared
# by the Snakefile), then DVC records it: dvc.lock gets the hash of every dep and out, the outs go
# into DVC's cache, and `dvc status` is clean. `dvc commit` rewrites files (and their mtimes), so
# `snakemake --touch` puts the mtimes back in DAG order: a later `snakemake -n` has nothing to do.
# A clone holds the committed metrics but not the DVC-cached files they came from: `cnnlab.stale`
# lists the outputs of the stages whose files `dvc status` finds deleted, and Snakemake is made to
# rerun them (alone it would take a job whose outputs are all in git for done).
run: $(STAMP)  ## the default pipeline on the embedded data, recorded in dvc.lock
	stale="$$($(BIN)/python -m cnnlab.stale)" && $(BIN)/snakemake --cores $(CORES) --forcerun $$stale
	$(BIN)/dvc commit --force --quiet
	$(BIN)/snakemake --touch --cores 1 --quiet
	$(BIN)/dvc status

pull: $(STAMP)  ## restore the outputs recorded in dvc.lock from the DVC remote, for both tools
	$(BIN)/dvc pull
	$(BIN)/snakemake --touch --cores 1 --quiet

test: $(STAMP)  ## fast tests + one real end-to-end pipeline run on tiny data, on $(CORES) pytest-xdist workers
	$(BIN)/python -m pytest -m "not slow" -n $(CORES) --dist worksteal

test-slow: $(STAMP)  ## long runs only (every model trained, DDP, ...)
	$(BIN)/python -m pytest -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest

dvc-yaml: $(STAMP)  ## regenerate dvc.yaml from the Snakefile (after changing rules or workflow/config.yaml)
	$(BIN)/python -m cnnlab.dag

mlflow-ui: $(STAMP)  ## compare runs in the browser at http://127.0.0.1:5000
	$(BIN)/mlflow server --backend-store-uri sqlite:///mlflow.db --artifacts-destination mlartifacts --host 127.0.0.1 --port 5000

clean:  ## remove stage outputs (not .venv, not mlflow.db)
	rm -rf data/prepared data/augmented data/encodings models reports logs/*.log logs/bench .snakemake
