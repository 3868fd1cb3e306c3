# llmcost — every entry point a newcomer needs. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo run serve test test-fast test-deps lint format bench bench-soak eval stack clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# An editable install leaves our modules uncompiled, and with PYTHONDONTWRITEBYTECODE set (as on
	# these machines) every `llmcost` process would compile them from source again at start-up.
	$(BIN)/python -m compileall -q exporter alerting llmcost
	touch $(STAMP)

venv: $(STAMP)

## The main job: fresh SQLite store, a real trace replayed, the console on 127.0.0.1:9800 (or LISTEN=HOST:PORT,
## or the environment's LLMCOST_LISTEN). The store is removed on exit: make demo ARGS=--keep keeps it.
demo: $(STAMP)
	@$(BIN)/llmcost demo $(if $(LISTEN),--listen $(LISTEN)) $(ARGS)

## Serve with your own config: make run ARGS='--config llmcost.yml'
run: $(STAMP)
	$(BIN)/llmcost serve $(ARGS)

test-deps:
	./scripts/install-test-deps.sh

# Two pytest-xdist workers, each with its own PostgreSQL cluster and free ports: most of the suite waits on
# real processes. Measured on this 2-core machine: the whole suite (1,562 tests) took 14.5 minutes before the
# changes that put its slowest files first (SLOW_FIRST in tests/conftest.py) and cut ~85 worker-seconds of
# waits and duplicate variants; beside other jobs at a load average of 8-10 it took 28 minutes after them,
# and test-fast ~115 s (~52 s on a quiet machine). `--dist worksteal`: a worker whose queue runs out takes
# tests queued on the other, so neither is left alone with a long test at the end. A fixed count, not
# `auto`: on a machine with many cores, `auto` would start as many PostgreSQL clusters. `.venv/bin/pytest
# tests/...` alone still runs in one process.
XDIST := -n 2 --dist worksteal

## The whole test suite, against real SQLite, PostgreSQL 15, Prometheus, Alertmanager and SMTP.
test: test-deps $(STAMP)
	$(BIN)/pytest $(XDIST)

## The inner loop: everything but real processes, outside binaries, PostgreSQL and the few heavy-data tests, < 60 s.
test-fast: $(STAMP)
	$(BIN)/pytest $(XDIST) -q -m 'not real_process and not postgres and not heavy' -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks (printed figures; not timed tests).
bench: test-deps $(STAMP)
	$(BIN)/python bench/run_all.py

## Soak: 10 minutes of mixed load per store (SQLite, PostgreSQL): make bench-soak ARGS='--duration 120'
bench-soak: test-deps $(STAMP)
	$(BIN)/python bench/soak.py $(ARGS)

## Detection evaluations: synthetic series from real traces, 43 real tenants, then a backfill (docs/detection.md);
## then budget forecasts on the same 43 tenants (docs/alerting.md#forecasts-need-evidence, ~15 s).
## With SERVEGEN=<a checkout of alibaba/ServeGen>, also the independent check on its m-mid and m-large groups.
eval: $(STAMP)
	$(BIN)/python bench/eval_detection.py
	$(BIN)/python bench/eval_real_traffic.py
	$(if $(SERVEGEN),for g in m-mid m-large; do $(BIN)/python bench/eval_real_traffic.py --traces $(SERVEGEN)/data/language/$$g || exit 1; done)
	$(BIN)/python bench/eval_backfill.py
	$(BIN)/python bench/eval_forecast.py
	$(if $(SERVEGEN),for g in m-mid m-large; do $(BIN)/python bench/eval_forecast.py --traces $(SERVEGEN)/data/language/$$g || exit 1; done)

## llmcost + local Prometheus and Alertmanager with the shipped configs: make stack ARGS='--duration 600'
stack: test-deps $(STAMP)
	$(BIN)/python scripts/stack.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
