# s3zip-dagster: every target creates or reuses .venv and installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# ZIP readers the tests check every archive with: 7-Zip, libarchive, Info-ZIP, Java, perl.
APT_PACKAGES := 7zip libarchive-tools unzip default-jdk-headless perl

.PHONY: venv tools demo dev test lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

# Installs the ZIP readers when one is missing (apt-get; run as root, as CI does).
tools:
	@if command -v 7zz >/dev/null && command -v bsdtar >/dev/null && command -v unzip >/dev/null \
	    && command -v java >/dev/null && command -v javac >/dev/null \
	    && command -v zipdetails >/dev/null; then \
	  echo "ZIP readers present"; \
	else \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES); \
	fi

demo: $(STAMP) tools
	$(BIN)/python -m s3zip_dagster.demo

dev: $(STAMP)
	$(BIN)/python -m s3zip_dagster.dev

test: $(STAMP) tools
	$(BIN)/ruff check s3zip_dagster tests benchmarks
	mkdir -p .local  # pytest's --basetemp needs its parent
	$(BIN)/python -m pytest -q --basetemp=.local/pytest

lint: $(STAMP)
	$(BIN)/ruff check s3zip_dagster tests benchmarks

# Every contender on every data set on a local S3 server; BENCH_ARGS="--sets seed --repeat 1"
# runs a subset. Writes benchmarks/results/latest.json and latest.png.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf .local .pytest_cache .hypothesis
