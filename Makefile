# `make run` serves the app on http://127.0.0.1:8000; `make test` runs lint and the tests
# (`make test-all` adds the slow ones);
# `make bench` runs the fan-out benchmark (docs/benchmark.md).
# `make superuser` adds an admin account; `make load-taxlaw` loads the tax-law documents.
# uv is used from PATH, or installed into .tools/ on first use.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PORT ?= 8000
# A client that stops reading cannot answer pings: daphne drops it after
# interval + timeout seconds, which bounds what is buffered for it.
DAPHNE_PINGS := --ping-interval 10 --ping-timeout 10

# The tutorial's 1000 tax-law documents with their vectors (docs/rag.md).
TAXLAW_URL ?= https://github.com/pyhub-kr/dump-data/raw/refs/heads/main/rag/sample-taxlaw-1000.jsonl

.PHONY: run test test-all lint bench superuser load-taxlaw migrate

# Runtime dependencies only; --inexact leaves a developer's test tools installed.
run: migrate
	$(UV) run --no-sync daphne -b 127.0.0.1 -p $(PORT) $(DAPHNE_PINGS) config.asgi:application

migrate: $(UV)
	$(UV) sync --locked --no-dev --inexact
	$(UV) run --no-sync python manage.py migrate --noinput

# Asks for a name and password; with DJANGO_SUPERUSER_USERNAME, _EMAIL and
# _PASSWORD set it asks nothing.
superuser: migrate
	$(UV) run --no-sync python manage.py createsuperuser $(if $(DJANGO_SUPERUSER_PASSWORD),--noinput)

load-taxlaw: migrate
	$(UV) run --no-sync python manage.py load_jsonl chat.TaxLawDocument $(TAXLAW_URL)

test: $(UV)
	$(UV) sync --locked
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run pytest

# The slow tests too (pyproject.toml's addopts leaves them out of `make test`).
test-all: $(UV)
	$(UV) sync --locked
	$(UV) run pytest -m ""

lint: $(UV)
	$(UV) run ruff check .
	$(UV) run ruff format --check .

bench: $(UV)
	$(UV) sync --locked
	$(UV) run python -m bench

.tools/bin/uv:
	python3 -m pip install --quiet --target .tools uv
