# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup browser clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium and CJK fonts for browser tests, PDF reports and screenshots.
browser:
	@command -v chromium >/dev/null 2>&1 && fc-list | grep -qi "Noto Sans CJK" && command -v pdftoppm >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk poppler-utils)

demo: $(STAMP)
	$(BIN)/onemap demo

test: $(STAMP) browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) data/onemap.duckdb
