# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
#   make demo                  installs onemap (the app only) into .venv, builds and serves the demo
#   make test                  installs onemap + the test tools, Debian chromium/fonts/poppler and Java 17, runs pytest
#   make bundle [BUNDLE=dir]   writes an offline bundle (default dist/onemap-bundle, and .tar.gz);
#                              BUNDLE_FLAGS="--no-debs --no-test-tools --no-archive" leave parts out
#   make demo BUNDLE=dir       the same two commands on a machine with no network, from a bundle
#   make test BUNDLE=dir
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev
BUNDLE ?=
# Extra pip options (e.g. PIP_FLAGS=--no-compile) and `onemap demo` arguments (e.g. DEMO_ARGS="--port 8060 --scale 0.5").
PIP_FLAGS ?=
DEMO_ARGS ?=
BUNDLE_FLAGS ?=

.PHONY: demo test setup browser java bundle bundle-check clean

# With BUNDLE (and a goal other than `bundle`), pip installs from the bundle alone: no index.
ifneq ($(BUNDLE),)
ifeq ($(filter bundle,$(MAKECMDGOALS)),)
WHEELS := $(abspath $(BUNDLE))/wheels
PIP_FROM := --no-index --find-links $(WHEELS)/app --find-links $(WHEELS)/build
PIP_FROM_DEV := $(PIP_FROM) --find-links $(WHEELS)/test
endif
endif

$(BIN)/python: | bundle-check
	@echo "==> [setup] creating $(VENV) with $(PY)"
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --progress-bar off $(PIP_FROM) --upgrade pip

# The app alone (what `make demo` needs): no pytest, playwright or notebook tools.
$(APP_STAMP): pyproject.toml | $(BIN)/python
	@echo "==> [setup] installing onemap and the libraries it runs on (about 90 packages, 300 MB; pip lists each)"
	$(BIN)/pip install --progress-bar off $(PIP_FLAGS) $(PIP_FROM) -e .
	@touch $@

# The app and the test tools (what `make test` needs).
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	@echo "==> [setup] installing onemap and the test tools (pytest, playwright, nbclient; pip lists each)"
	$(BIN)/pip install --progress-bar off $(PIP_FLAGS) $(PIP_FROM_DEV) -e '.[dev]'
	@touch $@ $(APP_STAMP)

setup: $(DEV_STAMP)

# A bundle is for one Python version: say so plainly instead of pip's "no matching distribution".
bundle-check:
ifneq ($(WHEELS),)
	@test -f $(abspath $(BUNDLE))/bundle.json || { echo "make: $(BUNDLE) is not an onemap bundle (no bundle.json); build one with make bundle"; exit 2; }
	@$(PY) -c 'import json, sys; want = json.load(open(sys.argv[1]))["python"]; have = "cp%d%d" % sys.version_info[:2]; sys.exit(0 if want == have else f"make: the bundle holds wheels for {want} and $(PY) is {have}: use that Python (make PY=python3.x ...) or build a bundle with this one")' $(abspath $(BUNDLE))/bundle.json
	@echo "==> [setup] installing from the bundle $(BUNDLE) (no network)"
endif

# Debian's Chromium and CJK fonts for browser tests, PDF reports and screenshots
# (with BUNDLE from its debs/, offline; a newer installed package is never downgraded).
browser:
	@command -v chromium >/dev/null 2>&1 && fc-list | grep -qi "Noto Sans CJK" && command -v pdftoppm >/dev/null 2>&1 || \
	  { echo "==> [setup] installing Debian chromium, fonts-noto-cjk, poppler-utils"; \
	    if [ -n "$(WHEELS)" ]; then sh $(abspath $(BUNDLE))/install-debs.sh; \
	    else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk poppler-utils; fi; }

# Debian's Java 17 for the province job on Apache Spark (pyspark's JVM; `onemap province run`).
java:
	@java -version 2>&1 | grep -q 'version "\(1[7-9]\|2[0-9]\)' || \
	  { echo "==> [setup] installing Debian openjdk-17-jre-headless (Java for Spark)"; \
	    if [ -n "$(WHEELS)" ]; then echo "make: no Java 17 here and the bundle carries none: install openjdk-17-jre-headless"; exit 2; \
	    else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; fi; }

demo: $(APP_STAMP)
	@echo "==> building the demo district and serving it (Ctrl+C stops)"
	$(BIN)/onemap demo $(DEMO_ARGS)

test: $(DEV_STAMP) browser java
	$(BIN)/python -m pytest

bundle: $(DEV_STAMP)
	$(BIN)/onemap bundle $(if $(BUNDLE),$(BUNDLE),dist/onemap-bundle) $(BUNDLE_FLAGS)

clean:
	rm -rf $(VENV) data/onemap.duckdb
