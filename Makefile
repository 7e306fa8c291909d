# Two commands for a newcomer: `make run` and `make test`. Each installs what it needs.
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
DEBS     := dbus xenstore-utils libxenstore4 libxen-dev qemu-utils xdg-dbus-proxy
# Wanted but not required: the browser test of rpc-proxy's WebSocket path skips without it.
OPTIONAL_DEBS := chromium
STATE    ?= $(CURDIR)/state
PYTEST_ARGS ?=
# The host suite runs in parallel workers (pytest-xdist), a test file per worker at a time so
# that a file's module fixtures start once; PYTEST_WORKERS=0 runs it in this one process.
PYTEST_WORKERS ?= 2

.PHONY: run test lint pytest debs venv bench clean xenlab-test xenlab

run: $(STAMP)
	$(BIN)/oxt-supervisor --config examples/oxt-supervisor.toml --embedded

test: $(STAMP) lint pytest xenlab

pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check actors supervision xen rpc persistence tests benchmarks examples
	$(BIN)/mypy

bench: $(STAMP)
	for b in benchmarks/[!_]*.py; do $(BIN)/python $$b || exit 1; done

debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@for p in $(OPTIONAL_DEBS); do dpkg -s $$p >/dev/null 2>&1 && continue; \
	  echo "installing optional Debian package $$p"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  { $$SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$p; } >/dev/null 2>&1 \
	    || echo "could not install $$p: the tests that need it are skipped"; \
	done

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml | debs
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Real Xen 4.17 + a Debian dom0 in QEMU; runs the xc backend's, the xenstore client's, the PV
# and PVH builders', the supervisor's and xenmgr's tests inside dom0 (docs/xenlab.md). Root;
# about 10 min once built on a quiet host (363-440 s in fresh-clone CI runs before the xenmgr
# module, which adds 3-6 min; 996 s in a CI run at load 4; 4-5x more at load 10), +1 min to
# build. XENLAB_BENCH=1: then the benchmark against xl and the PVH comparison (opt-in).
# `make test` runs the lab too on an x86-64 host; XENLAB=0 skips it (say so: it is the proof
# of the xc backend on real Xen).
xenlab:
	@if [ "$${XENLAB:-1}" = 0 ]; then echo "xenlab: skipped (XENLAB=0)"; \
	elif [ "$$(uname -m)" != x86_64 ]; then echo "xenlab: skipped (needs an x86-64 host)"; \
	else $(MAKE) --no-print-directory xenlab-test; fi

xenlab-test: $(STAMP)
	@SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -E"; $$SUDO tests/xenlab/lab.sh test

clean:
	rm -rf $(VENV) $(STATE) *.egg-info .pytest_cache .mypy_cache .ruff_cache
