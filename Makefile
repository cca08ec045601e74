# Benchmark entry points (bench/README.md, docs/performance.md). Extra runner flags: ARGS="...".
PYTHON ?= .venv/bin/python
BENCH_DEPS = test -x $(PYTHON) || python3 -m venv .venv; \
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt

.PHONY: bench bench-quick

# The default set, ~12 minutes: S1-S5 on daphne; in-memory layers + Redis pub/sub; SQLite + PostgreSQL.
bench:
	$(BENCH_DEPS)
	$(PYTHON) -m bench.run $(ARGS)

# Smoke run of every scenario (each well under a minute), no profiling.
bench-quick:
	$(BENCH_DEPS)
	$(PYTHON) -m bench.run --quick $(ARGS)
