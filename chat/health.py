"""`/healthz` for load balancers and container healthchecks, and the middleware
that serves it and `/metrics`.

200 when the database and Redis (if REDIS_URL is set) answer, 503 naming what
does not. No login, no detail an outsider could use (only the exception's
class), and cheap enough to poll every few seconds: one `SELECT 1` and one
`PING`, each with a short timeout.
"""

import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from chat.metrics import metrics_view
from chat.redis_url import redis_client_sync

logger = logging.getLogger(__name__)

# Seconds a check may take before the component counts as down.
REDIS_TIMEOUT = 2.0


def database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def redis_check() -> None:
    # One client (and connection pool) for the process: polling opens no new sockets.
    redis_client_sync(socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT).ping()


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


_ENDPOINTS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/metrics": metrics_view,
}


@sync_and_async_middleware
def operations_middleware(
    get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]],
) -> Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]:
    """Answer /healthz and /metrics ahead of every other middleware.

    Load balancers and Prometheus address each process by its IP, which is not
    in ALLOWED_HOSTS, and over plain HTTP: host validation and the HTTPS
    redirect would refuse them. Neither endpoint builds a URL from the Host
    header, so skipping its validation exposes nothing.
    """
    if iscoroutinefunction(get_response):

        async def middleware_async(request: HttpRequest) -> HttpResponse:
            if (view := _ENDPOINTS.get(request.path_info)) is not None:
                # The checks block (a query, a Redis ping): off the event loop.
                return await sync_to_async(view)(request)
            return await get_response(request)

        return middleware_async

    def middleware(request: HttpRequest) -> HttpResponse:
        if (view := _ENDPOINTS.get(request.path_info)) is not None:
            return view(request)
        return get_response(request)  # type: ignore[return-value]  # sync in this branch

    return middleware
