# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= conf/callnow.toml
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit setup clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgresql]'
	# Regenerate the twistd plugin cache as the installing user (see README).
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	touch $(STAMP)

setup: $(STAMP)

## make run: set up, provision the demo extension, start the daemon in the foreground
run: $(STAMP)
	mkdir -p var
	$(BIN)/callnowctl --config $(CONFIG) demo
	$(BIN)/twistd --nodaemon --pidfile= callnow --config $(CONFIG)

## make test: set up (including redis-server when missing), then every quality gate
test: $(STAMP)
	@command -v redis-server >/dev/null 2>&1 || ./.ci/install-redis
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q --ignore=tests/integration

bench: $(STAMP)
	$(BIN)/python benchmarks/http_pages.py

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache
