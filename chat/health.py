"""`/healthz` for load balancers and container healthchecks.

200 when the database and Redis (if REDIS_URL is set) answer, 503 naming what
does not. No login, no detail an outsider could use (only the exception's
class), and cheap enough to poll every few seconds: one `SELECT 1` and one
`PING`, each with a short timeout.
"""

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

# Seconds a check may take before the component counts as down.
REDIS_TIMEOUT = 2.0

_redis_clients: dict[str, redis.Redis] = {}


def database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def redis_check() -> None:
    # One client (and connection pool) per URL for the process: polling opens no new sockets.
    url = settings.REDIS_URL
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
    _redis_clients[url].ping()


def health_report() -> dict[str, str]:
    """Each component's state: "ok", or "down (<exception class>)"."""
    checks: dict[str, Callable[[], None]] = {"database": database_check}
    if settings.REDIS_URL:
        checks["redis"] = redis_check
    report = {}
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:
            logger.warning("health check: %s is down", name, exc_info=True)
            report[name] = f"down ({type(exc).__name__})"
        else:
            report[name] = "ok"
    return report


@login_not_required
@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    down = sorted(name for name, state in report.items() if state != "ok")
    status = "ok" if not down else "down: " + ", ".join(down)
    return JsonResponse({"status": status, **report}, status=503 if down else 200)
