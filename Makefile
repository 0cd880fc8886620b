# make install: .venv with dragon (editable, test extras) + ffmpeg, ImageMagick, fonts and
#               espeak-ng (spoken tracks of video.create); Node and the JavaScript tus
#               clients the end-to-end tests drive (tests/js: tus-js-client, Uppy, esbuild).
# make run:     serve the API on 127.0.0.1:8080 (DRAGON_PORT to change), data in ./var.
# make test:    the whole suite on SQLite with branch coverage (fails below COVERAGE_FLOOR),
#               then the end-to-end suite on PostgreSQL + S3 (make test-sqlite / test-postgres).
# make test-fast: the unit tests alone.
# make lint:    ruff, ruff format, mypy --strict, the import layers (.importlinter) and a
#               cyclomatic complexity limit of 15 per function (radon's count).
# make bench:   the benchmarks in scripts/ (BENCH="api thumb" for some of them); installs
#               their extras (redis-server, wrk, libvips, the bench extra).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := ffmpeg imagemagick fonts-dejavu-core curl postgresql chromium espeak-ng nodejs npm
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-tools run test test-sqlite test-postgres test-fast lint format bench clean

install: system-tools $(VENV)/.installed tests/js/node_modules/.installed

$(VENV)/.installed: setup.cfg setup.py pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --silent
	touch $@

system-tools:
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	{ command -v convert-im6.q16 >/dev/null || command -v magick >/dev/null; } || missing="$$missing imagemagick"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); \
	fi

run: install
	$(BIN)/dragon serve

# Branch coverage of the package, the e2e servers' subprocesses included (76% measured).
COVERAGE_FLOOR ?= 70
# The e2e tests mostly wait on servers and tools: four workers keep a 2-core run short.
TEST_WORKERS ?= 4

# Both database backends: the whole suite on SQLite (with coverage), then the whole
# end-to-end suite again with every server on PostgreSQL and S3 (moto), as several nodes
# run. test_cluster.py starts its PostgreSQL nodes itself and runs once.
test: test-sqlite test-postgres

test-sqlite: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --cov --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

test-postgres: install
	DRAGON_TEST_BACKEND=postgres $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-cov tests/e2e --ignore=tests/e2e/test_cluster.py

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/check_complexity.py dragon

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	ldconfig -p | grep -q libvips.so.42 || $(SUDO) apt-get install -y -qq libvips42 || true
	{ command -v redis-server && command -v wrk; } >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		redis-server wrk; }
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python scripts/bench.py $(BENCH)

clean:
	rm -rf $(VENV) var *.egg-info
