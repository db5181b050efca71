# `make run` serves the app on http://127.0.0.1:8000; `make test` runs lint and the tests;
# `make bench` runs the fan-out benchmark (docs/benchmark.md).
# uv is used from PATH, or installed into .tools/ on first use.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PORT ?= 8000
# A client that stops reading cannot answer pings: daphne drops it after
# interval + timeout seconds, which bounds what is buffered for it.
DAPHNE_PINGS := --ping-interval 10 --ping-timeout 10

.PHONY: run test lint bench

# Runtime dependencies only; --inexact leaves a developer's test tools installed.
run: $(UV)
	$(UV) sync --locked --no-dev --inexact
	$(UV) run --no-sync python manage.py migrate --noinput
	$(UV) run --no-sync daphne -b 127.0.0.1 -p $(PORT) $(DAPHNE_PINGS) config.asgi:application

test: $(UV)
	$(UV) sync --locked
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run pytest

lint: $(UV)
	$(UV) run ruff check .
	$(UV) run ruff format --check .

bench: $(UV)
	$(UV) sync --locked
	$(UV) run python -m bench

.tools/bin/uv:
	python3 -m pip install --quiet --target .tools uv
