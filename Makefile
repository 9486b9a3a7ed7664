# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := .cache/statsd/.installed
GRPC_JS_STAMP := .cache/grpc-js-server/.installed
DEMO_TIME ?= 20s
DEMO_USERS ?= 20

.PHONY: install system-deps protos backends stop demo test lint bench clean

install: $(STAMP)

# Re-installs only when the package metadata changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# The reference statsd daemon (Node) that the StatsD end-to-end test talks to.
$(NODE_STAMP):
	npm install --prefix .cache/statsd --no-audit --no-fund statsd@0.9.0
	@touch $@

# @grpc/grpc-js for the native gRPC transport's conformance tests (tests/test_grpc/node_grpc_server.js) and the
# benches.
$(GRPC_JS_STAMP):
	npm install --prefix .cache/grpc-js-server --no-audit --no-fund @grpc/grpc-js@1.14.7 @grpc/proto-loader@0.8.1
	@touch $@

protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. protos/loadtest/v1/loadtest.proto

# Sized from the machine: gRPC workers from the cores; WebSocket workers from the hard open-file limit when
# WS_CONNECTIONS asks for more than one process holds (make backends WS_CONNECTIONS=100000), else 1 (rooms span).
backends: $(STAMP)
	LOADTEST_WS_CONNECTIONS=$(WS_CONNECTIONS) $(PY) -m backends.control start

stop:
	@test -x $(PY) && $(PY) -m backends.control stop || true

# Both backends, a headless run of each example locustfile graded by thresholds.yaml, reports in reports/.
demo: $(STAMP)
	$(PY) scripts/demo.py --time $(DEMO_TIME) --users $(DEMO_USERS)

# Debian packages some tests need: Chromium (the web UI browser test), carbon and graphite-web (the Graphite test),
# iproute2 and iptables (the network-fault tests: a network namespace of their own, root only).
# Installs only what is missing, as root with apt-get; otherwise says what is missing, and those tests skip
# (under CI=true they fail).
SYSTEM_PACKAGES := chromium graphite-carbon graphite-web iproute2 iptables

system-deps:
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "system-deps: installing$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y --no-install-recommends $$missing \
	        || { apt-get update && apt-get install -y --no-install-recommends $$missing; }; \
	else \
	    echo "system-deps: not installed:$$missing; run 'make system-deps' as root on Debian (apt-get)." \
	         "The tests that need them skip."; \
	fi

test: system-deps lint $(NODE_STAMP) $(GRPC_JS_STAMP)
	$(PY) -m pytest

# Style, types, and the import contracts in pyproject.toml (who may import whom: docs/architecture.md).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Every bench script (helpers and bench locustfiles excluded); each prints ratios measured in one run.
bench: $(STAMP)
	@for script in $(filter-out bench/_% bench/locustfile_%,$(wildcard bench/*.py)); do \
	    echo "== $$script"; $(PY) $$script || exit 1; done

clean: stop
	rm -rf $(VENV) .cache run reports .pytest_cache .mypy_cache .ruff_cache
