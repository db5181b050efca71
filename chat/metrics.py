"""Prometheus instruments, and `/metrics` to read them.

The figures are this process's own, as Prometheus expects: scrape every
daphne process (docs/scaling.md). `/metrics` answers loopback clients, and
anyone sending `Authorization: Bearer $CHAT_METRICS_TOKEN`; everyone else
gets a 404, as if it did not exist.
"""

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

OPEN_WEBSOCKETS = Gauge("chat_open_websockets", "Room websockets open in this process.")
REPLIES_STREAMING = Gauge("chat_replies_streaming", "Replies this process is writing.")
# Turn-taking refuses a second question while a reply streams, so nothing
# waits yet; the gauge is there for shared rooms, which queue questions.
QUESTIONS_QUEUED = Gauge("chat_questions_queued", "Questions waiting for their room's reply.")
FRAMES_SENT = Counter("chat_frames_sent", "Websocket frames sent to tabs.")
REPLIES = Counter("chat_replies", "Replies finished, by outcome.", ["outcome"])
MODEL_ERRORS = Counter("chat_model_errors", "Model faults, by kind.", ["kind"])
# Counted from the usage the server reports with each reply and recap (usage.usage_count).
TOKENS = Counter(
    "chat_tokens", "Tokens the model server reported, by model and kind.", ["model", "kind"]
)
BUDGET_REFUSALS = Counter(
    "chat_budget_refusals",
    "Replies not started for a spent budget (day, month: the asker's; room), by budget.",
    ["budget"],
)
# Fan-out (chat/outbox.py, chat/layers.py).
VERSIONS_SKIPPED = Counter(
    "chat_versions_skipped", "Message versions a slow tab skipped for a newer one."
)
SLOW_TABS_CLOSED = Counter("chat_slow_tabs_closed", "Tabs closed for falling too far behind.")
SYNCS_DROPPED = Counter("chat_syncs_dropped", "Catch-up requests over a socket's throttle.")
LAYER_DROPS = Counter(
    "chat_layer_drops",
    "Redis subscription drops: recovered by redis-py at once (tabs re-sync) or not (tabs closed).",
    ["recovered"],
)
# Replies take from a fraction of a second to minutes.
_SECONDS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
TIME_TO_FIRST_TOKEN = Histogram(
    "chat_reply_first_token_seconds", "From a reply's start to its first token.", buckets=_SECONDS
)
REPLY_DURATION = Histogram(
    "chat_reply_duration_seconds", "From a reply's start to its end.", buckets=_SECONDS
)


def scrape_allowed(request: HttpRequest) -> bool:
    """Loopback clients, or the bearer of CHAT_METRICS_TOKEN (when one is set)."""
    token = settings.CHAT_METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    ):
        return True
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@login_not_required
@require_safe
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not scrape_allowed(request):
        return HttpResponseNotFound()
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
