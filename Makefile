# Two commands do everything: `make run` and `make test`. Both are idempotent: the virtualenv,
# the web UI's node_modules and its build are redone only when their inputs change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
WEB_BUILD := web/dist/index.html
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html \
	web/vite.config.ts web/tsconfig.json web/openapi.json

.PHONY: run test lint typecheck pytest webtest chromium services bench bench-ui clean

run: $(STAMP) $(WEB_BUILD)
	$(BIN)/ssechat serve

test: $(STAMP) $(WEB_BUILD) chromium services lint typecheck webtest pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict src bench

webtest: $(WEB_STAMP)
	cd web && npm run check

pytest: $(STAMP) $(WEB_BUILD) chromium services
	$(BIN)/pytest

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

# The build generates generated/api.ts from openapi.json (npm run gen:api), then runs tsc --noEmit
# (TypeScript strict) and vite build.
$(WEB_BUILD): $(WEB_STAMP) $(WEB_SOURCES)
	cd web && npm run build

# The end-to-end tests drive Debian's Chromium (never a browser downloaded by a test tool).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the end-to-end tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The PostgreSQL and Redis tests start their own servers, in temporary folders on free ports
# (tests/services.py), from the binaries of Debian's packages: installed here when missing, never
# started or enabled as system services by us. `make run` needs neither.
services:
	@{ ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && command -v redis-server >/dev/null 2>&1; } || { \
		echo "installing Debian's postgresql and redis-server for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server; }

# The benchmark (10-20 minutes: the relay, then search and import): writes bench/RESULTS.md and
# bench/results.json. It installs its peers itself (bench/.venv-peers, npm ci in bench/peers). A
# short smoke run of it is part of `make test` (tests/test_bench_smoke.py).
bench: $(STAMP)
	$(BIN)/python -m bench.run

# Not part of `make test`: a few minutes, mostly the naive baseline.
bench-ui: $(STAMP) $(WEB_STAMP) chromium
	$(BIN)/python bench/ui/render_bench.py --check

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache web/node_modules web/dist
