# Two entry points, both doing their own set-up on a fresh machine:
#   make test   - create .venv (first use), install the pinned frameworks + the package, lint, run the whole suite,
#                 then run the JAX tests again in a venv without torch (.venv-jax), proving inna.optax needs no torch,
#                 and the torch tests again under ATEN_CPU_CAPABILITY=default (test-cpu-default),
#                 then build the documentation site with `mkdocs build --strict` (make docs), then check the package
#                 as users get it (make package)
#   make bench  - same set-up, then run the main job
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
JAX_VENV  ?= .venv-jax
JAX_STAMP := $(JAX_VENV)/.installed-stamp
PIP_FLAGS := --quiet --disable-pip-version-check -c constraints.txt
PYTEST_ARGS ?=

.PHONY: test test-main test-jax-only test-cpu-default docs package bench lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -e ".[dev]"
	touch $(STAMP)

$(JAX_STAMP): pyproject.toml constraints.txt
	test -x $(JAX_VENV)/bin/python || $(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install $(PIP_FLAGS) -e ".[jax,test-jax]"
	touch $(JAX_STAMP)

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples docs/hooks
	$(PY) -m ruff format --check src tests benchmarks examples docs/hooks

# One pytest worker per CPU core, each taking whole files (a file's fixtures, such as its Ray instance or its
# Slurm jobs, stay in one process): on 2 cores this halves the suite's time, most of which is subprocesses.
test-main: lint
	$(PY) -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

# The JAX side alone: torch must not even be importable there.
test-jax-only: $(JAX_STAMP)
	$(JAX_VENV)/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
		|| { echo "torch is installed in $(JAX_VENV): the JAX-only check is void"; exit 1; }
	$(JAX_VENV)/bin/python -m pytest -n auto -m "not needs_torch" tests/test_formulas.py tests/jax_optax $(PYTEST_ARGS)

# The torch tests again on torch's portable CPU kernels (no AVX2/AVX-512, as on another CPU): no test may depend
# on the CPU it runs on. torch.compile's tests are slow-marked and left out: inductor does not build under `default`.
test-cpu-default: $(STAMP)
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -m "not slow" tests/pytorch $(PYTEST_ARGS)

# The site (mkdocs.yml): every page, the API reference from the docstrings, a broken link or reference fails it.
# KaTeX comes from Debian's libjs-katex (or npm's katex): docs/hooks/katex.py says how to install it when missing.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

# The package as users get it: sdist and wheel built by `python -m build` (isolated, as pip builds), checked by
# `twine check --strict`, the wheel installed with torch into a fresh venv, and one step of each optimizer run from
# there with an empty kernel cache, so the C loop is built from site-packages (tests/package_smoke.py).
PKG_DIR := build/package
package: $(STAMP)
	rm -rf $(PKG_DIR) && mkdir -p $(PKG_DIR)
	$(PY) -m build --outdir $(PKG_DIR)/dist . > $(PKG_DIR)/build.log 2>&1 || { cat $(PKG_DIR)/build.log; exit 1; }
	$(PY) -m twine check --strict $(PKG_DIR)/dist/*
	$(PYTHON) -m venv $(PKG_DIR)/venv
	$(PKG_DIR)/venv/bin/python -m pip install $(PIP_FLAGS) --no-compile "$$(ls $(PKG_DIR)/dist/*.whl)[torch]"
	cd $(PKG_DIR)/venv && INNA_KERNEL_CACHE=$(CURDIR)/$(PKG_DIR)/kernels bin/python $(CURDIR)/tests/package_smoke.py

test: test-main test-jax-only test-cpu-default docs package

bench: $(STAMP)
	$(VENV)/bin/inna bench

clean:
	rm -rf $(VENV) $(JAX_VENV) build dist site src/*.egg-info .pytest_cache .hypothesis .ruff_cache
