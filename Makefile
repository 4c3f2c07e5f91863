# The two commands the README starts with, and the checks behind them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test check unit install chromium bench

# Install, load the demo firm, and serve it on http://127.0.0.1:8000/
run: $(VENV)/.installed
	$(BIN)/tickmark demo
	$(BIN)/tickmark serve

# Install, then run every check and every test.
test: $(VENV)/.installed chromium
	$(MAKE) check
	$(BIN)/pytest

# The browser tests drive Debian's Chromium (Playwright's own browser
# downloads need the internet). Installed here when we may; otherwise the
# browser tests fail and say how to install it.
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null \
		&& [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

# Formatting, lint and types, without the tests.
check: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# The benchmarks of docs/performance.md, beside a bare reference server:
# needs the machine's PostgreSQL (127.0.0.1:5432, trust) and redis-server;
# about 8 minutes on 2 cores; rewrites the table and the plot in docs/.
bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench --docs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@
