# Autoriza: two commands do everything on a fresh machine with Python 3.11.
#   make demo   installs what is missing, then runs web + worker + SII sandbox + demo firm
#   make test   installs what is missing, then runs the whole test suite
# Both call scripts/bootstrap.sh first (uv, locked dependencies, Chromium, a local .env).

SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(CURDIR)/var/tools/bin:$(PATH)
PY := .venv/bin/python

.PHONY: demo test setup

setup:
	@bash scripts/bootstrap.sh

demo: setup
	@$(PY) manage.py demo

# PYTEST_ARGS narrows a run, e.g. `make test PYTEST_ARGS="-m 'not browser'"`.
test: setup
	@bash scripts/test.sh $(PYTEST_ARGS)

# Benchmarks (they measure; they are not tests): throughput, bot overhead, portal latency.
# Options through the environment, e.g. `BENCH_QUICK=1 make bench` or `BENCH_ONLY=bot make bench`.
.PHONY: bench
bench: setup
	@$(PY) -m benchmarks
