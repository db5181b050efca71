"""/healthz: 200 when the database and Redis answer, 503 naming what does not, never a crash."""

import json
import secrets
import subprocess
import sys

import pytest
from django.test import Client

from tests.servers import ROOT, DaphneServer, free_port

pytestmark = pytest.mark.django_db


def test_healthy_without_logging_in():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_redis_down_is_a_503_that_names_it(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "down: redis",
        "database": "ok",
        "redis": "down (ConnectionError)",
    }


def test_without_redis_only_the_database_is_checked(settings):
    settings.REDIS_URL = ""
    assert Client().get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_only_reads_are_allowed():
    assert Client().post("/healthz").status_code == 405
    assert Client().head("/healthz").status_code == 200


def test_plain_http_is_not_redirected_even_when_https_is_enforced(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/healthz").status_code == 200
    assert Client().get("/chat/").status_code == 301


def test_a_load_balancer_addressing_the_process_by_ip_is_answered():
    """Its Host is the process's address, which ALLOWED_HOSTS does not list."""
    by_address = Client(HTTP_HOST="10.0.0.5:8000")
    assert by_address.get("/healthz").status_code == 200
    assert by_address.get("/metrics").status_code == 200
    assert by_address.get("/accounts/login/").status_code == 400


@pytest.mark.integration
def test_a_process_whose_database_and_redis_are_gone_answers_503_and_fails_its_healthcheck():
    """Also: the process still starts, and prints the address to open."""
    port = free_port()
    env = {
        # Nothing listens on these ports.
        "DATABASE_URL": f"postgres://chat:chat@127.0.0.1:{free_port()}/chat",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    }
    server = DaphneServer(env, port=port).start()
    try:
        check = subprocess.run(
            [sys.executable, "deploy/healthcheck.py"],
            cwd=ROOT,
            env={**env, "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.stop()
    assert f"Live Chat is starting: open http://127.0.0.1:{port}/" in server.output()
    assert check.returncode == 1
    assert json.loads(check.stderr) == {
        "status": "down: database, redis",
        "database": "down (OperationalError)",
        "redis": "down (ConnectionError)",
    }
