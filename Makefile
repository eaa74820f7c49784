# Quick start: `make demo` (fine-tune the shipped toyfaces generator with eyes and mouth links, ~6-7 min on 2 cores) and `make test`.
# Both create or reuse the local virtualenv .venv, with the CPU build of torch 2.13.0.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.linkgan-installed

.PHONY: demo demo-quick test lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	# pytorch-fid only for a test that checks our Frechet distance against its function; --no-deps keeps
	# its torchvision requirement (broken beside the CPU torch) out.
	$(PY) -m pip install -q --no-deps pytorch-fid==0.3.0
	touch $@

demo: $(STAMP)
	$(VENV)/bin/linkgan demo --out demo

demo-quick: $(STAMP)
	$(VENV)/bin/linkgan demo --out demo-quick --quick

# lint: pyflakes, pycodestyle and import order (ruff), and no import cycles (import-linter; pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf demo demo-quick .pytest_cache
