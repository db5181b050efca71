FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH="/app/.venv/bin:$PATH"

RUN pip install --no-cache-dir uv
WORKDIR /app

# Runtime dependencies only (no test or benchmark tools), first, so code
# changes reuse the cached layer.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project

COPY . .

# An unprivileged user; the collected static files (docker-compose.yml's
# `migrate` writes them to a volume the proxy serves) belong to it.
RUN useradd --system --uid 10001 chat && mkdir -p /app/staticfiles && chown chat /app/staticfiles
USER chat

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s CMD ["python", "deploy/healthcheck.py"]
# Migrations run once, before any process serves: docker-compose.yml's `migrate`
# service, or `docker run ... python manage.py migrate` by hand.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--ping-interval", "10", "--ping-timeout", "10", "config.asgi:application"]
