# ferrogate developer loop. Every target sets up what it needs: a venv in .venv, the pip packages
# in requirements-dev.txt, and a release build of the extension (built once per run).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Tests must never wait on a network index for a package the venv already has.
export PIP_DISABLE_PIP_VERSION_CHECK := 1

RUST_SRC := $(shell find src -name '*.rs') Cargo.toml
PY_SRC := $(shell find python -name '*.py' -o -name '*.pyi')

.PHONY: help demo test lint bench blocks footprint dev build fmt clean rust-test py-test fuzz load soak redis-bin docs wheel

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.deps: requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# The extension, built release and profile-guided (benchmarks and the demo measure what users
# get; see tools/pgo_build.sh), installed into the venv in editable mode so python/ferrogate is
# imported from the work tree. `PGO=0 make ...` builds plain release, in half the time.
export PGO ?= 1
# One stamp per mode, so switching PGO rebuilds.
BUILT := $(VENV)/.built-pgo$(PGO)
$(BUILT): $(VENV)/.deps $(RUST_SRC) pyproject.toml tools/pgo_build.sh tests/bench/pgo_train.py
	tools/pgo_build.sh
	rm -f $(VENV)/.built-pgo*
	touch $@

build: $(BUILT)

dev: build ## editable release build (profile-guided; PGO=0 for plain) into .venv

demo: build ## build everything and run the example API behind the gate
	$(PY) -m ferrogate demo

fmt: ## format Rust and Python
	cargo fmt
	ruff format python tests tools
	ruff check --fix python tests tools

lint: $(BUILT) ## cargo fmt/clippy (pedantic), ruff, mypy --strict, stubtest, the import graphs
	cargo fmt --check
	cargo clippy --release --all-targets --all-features -- -D warnings
	ruff check python tests tools
	ruff format --check python tests tools
	mypy --strict python/ferrogate
	$(PY) -m mypy.stubtest ferrogate._native
	$(PY) tools/import_graph.py

rust-test: redis-bin
	cargo test --release

# The Redis tests start their own redis-server (Debian's package) on a free loopback port.
redis-bin:
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)

# The lowest supported Django and Flask/werkzeug, each in a directory of its own (no deps: the
# rest comes from the venv), for the tests that check the compat code and the rule reading on them.
LOWEST := $(VENV)/lowest
$(LOWEST)/.stamp: $(VENV)/.deps
	$(PY) -m pip install -q --no-deps --target $(LOWEST)/django "django==4.2.*"
	$(PY) -m pip install -q --no-deps --target $(LOWEST)/flask "flask==2.3.*" "werkzeug==2.3.*"
	touch $@

py-test: $(BUILT) redis-bin $(LOWEST)/.stamp
	FERROGATE_DJANGO_LOWEST=$(CURDIR)/$(LOWEST)/django FERROGATE_FLASK_LOWEST=$(CURDIR)/$(LOWEST)/flask \
		$(PY) -m pytest -q -m "not bench" -p no:cacheprovider

# The docs' code blocks run in py-test (tests/test_docs_examples.py); the wheel is built before it
# so that tests/test_wheel.py installs this run's wheel instead of building its own.
test: build lint rust-test docs wheel py-test ## build everything and run every test (Rust, Python, docs, the wheel)

# The documentation site, built strictly (a warning fails): broken links and anchors, pages missing
# from the nav, API reference problems. The API reference imports the built extension.
docs: $(BUILT) ## the documentation site, strictly, into site/
	NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet

# The release artifacts (tools/build_wheel.sh): the abi3 manylinux_2_28 wheel and the sdist. Rebuilt
# when a source changes; in its own cargo target directory (target-wheel/).
WHEEL_STAMP := dist/.built
$(WHEEL_STAMP): $(VENV)/.deps $(RUST_SRC) $(PY_SRC) Cargo.lock pyproject.toml README.md tools/build_wheel.sh
	tools/build_wheel.sh dist
	touch $@

wheel: $(WHEEL_STAMP) ## the wheel users install (abi3, manylinux_2_28) and the sdist, into dist/

bench: build redis-bin ## benchmarks, side by side with the peers, in one run
	mkdir -p bench-results
	$(PY) -m pytest -q -m bench -p no:cacheprovider --benchmark-only \
		--benchmark-columns=median,iqr,ops,rounds --benchmark-sort=name \
		--benchmark-json=bench-results/latest.json tests/bench
	$(PY) tests/bench/ratios.py bench-results/latest.json
	$(PY) tools/perf_table.py bench-results/latest.json --write docs/performance.md

blocks: build ## bare vs the stack, timed in alternating blocks of 25 requests in one process (Flask, Django)
	$(PY) tests/bench/blocks.py flask --procs 8
	$(PY) tests/bench/blocks.py django --procs 6

footprint: build ## instructions and L2 misses per whole request (callgrind), bare vs the stack: counts, not times
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	mkdir -p bench-results
	$(PY) tests/bench/footprint.py --out bench-results

fuzz: build ## property tests / fuzzing for much longer than `make test` runs them
	PROPTEST_CASES=50000 cargo test --release --test prop_core
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz_boundary.py tests/test_routing_differential.py

load: build redis-bin ## gunicorn + wrk load test: bare app vs the app behind the gate (real HTTP on 127.0.0.1)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) tests/load/run.py

soak: build redis-bin ## 10 minutes of mixed traffic on one worker, in memory then on Redis: RSS, threads and sockets must stay flat
	$(PY) tests/load/soak.py --seconds 600
	$(PY) tests/load/soak.py --seconds 600 --redis

clean:
	rm -rf target target-wheel dist site $(VENV) bench-results
