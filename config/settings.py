"""Settings, read from the environment with safe defaults for local use.

Django's own settings use the DJANGO_ prefix; service URLs and keys
(DATABASE_URL, REDIS_URL, OPENAI_*) are unprefixed, as their tools expect.
"""

from pathlib import Path
from typing import overload

import csp.constants
import environ
from django.core.exceptions import ImproperlyConfigured

from chat.redis_url import channel_layer_host

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Public, so only for local development: refused whenever DEBUG is off.
DEVELOPMENT_SECRET_KEY = "django-insecure-local-development-key-change-me-0123456789"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is false but DJANGO_SECRET_KEY is not set: the development key is "
        "public. Set DJANGO_SECRET_KEY to a long random value."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS hardening, on whenever DEBUG is off. Behind a proxy that terminates TLS,
# set DJANGO_SECURE_PROXY_SSL_HEADER=true; a plain-HTTP setup (tests, a LAN)
# can switch the redirect and the secure cookies off.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = env.bool(
    "DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG
)
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Pages carry the token in the HTML (hx-headers); scripts never need the cookie.
CSRF_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    # daphne first: it replaces runserver with an ASGI server.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    # Vector search: loads sqlite-vec into SQLite connections, and creates
    # PostgreSQL's vector extension in its first migration.
    "pyhub.rag",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login, except those marked login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # The designed 404 page with DEBUG on too (the technical one shows the URL patterns).
    "chat.errorpages.designed_404_middleware",
]

ROOT_URLCONF = "config.urls"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:room_list"
LOGOUT_REDIRECT_URL = "login"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chat.context_processors.model_info",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's SQLite backend plus vec0 virtual tables for the document embeddings.
    DATABASES["default"]["ENGINE"] = "pyhub.db.backends.sqlite3"
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The document table differs per backend (vec0 on SQLite, pgvector halfvec
    # here), so PostgreSQL has its own migrations; see chat/migrations_pg/__init__.py.
    MIGRATION_MODULES = {"chat": "chat.migrations_pg"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis serves every process; without it a single process falls back to
# the in-memory layer (config.asgi warns about that at start-up).
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels-redis's pub/sub layer, which publishes each room update once
            # and fans it out in each process, told of Redis drops (chat/layers.py).
            "BACKEND": "chat.layers.RoomPubSubLayer",
            "CONFIG": {
                "hosts": [channel_layer_host(REDIS_URL)],
                "prefix": env.str("CHANNELS_PREFIX", default="asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ko", "한국어")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the finders, so daphne serves htmx and our assets with
# DEBUG on or off and no collectstatic step.
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"chat": {"level": env.str("CHAT_LOG_LEVEL", default="INFO")}},
}

# The model: any OpenAI-compatible server. With neither a key nor a base URL,
# the offline demo model answers instead.
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini")
# Seconds to wait for the server to answer and between streamed chunks.
OPENAI_TIMEOUT = env.float("OPENAI_TIMEOUT", default=60.0)

# Chat behaviour.
CHAT_MESSAGE_MAX_LENGTH = env.int("CHAT_MESSAGE_MAX_LENGTH", default=8000)
# A room page shows this many of its newest messages; older ones load on demand.
CHAT_PAGE_SIZE = env.int("CHAT_PAGE_SIZE", default=50)
# Each user may send CHAT_RATE_LIMIT messages every CHAT_RATE_WINDOW seconds.
CHAT_RATE_LIMIT = env.int("CHAT_RATE_LIMIT", default=20)
CHAT_RATE_WINDOW = env.float("CHAT_RATE_WINDOW", default=60.0)
# Open websockets per user, counted across processes (chat.connections).
CHAT_MAX_CONNECTIONS_PER_USER = env.int("CHAT_MAX_CONNECTIONS_PER_USER", default=20)
# Our own keys in Redis (the rate limit) start with this.
CHAT_REDIS_PREFIX = env.str("CHAT_REDIS_PREFIX", default="chat")
# Websocket frames longer than this (characters) are refused unread: room for a
# full-length message even with every character JSON-escaped.
CHAT_FRAME_MAX_LENGTH = env.int("CHAT_FRAME_MAX_LENGTH", default=64_000)
# A streaming reply is broadcast at most once per interval (seconds): each
# update carries the whole text so far, so coalescing loses nothing.
CHAT_STREAM_INTERVAL = env.float("CHAT_STREAM_INTERVAL", default=0.04)
# Updates a second one process broadcasts over all its streaming replies; with
# more replies than this allows at CHAT_STREAM_INTERVAL, each is updated less often.
CHAT_STREAM_BUDGET = env.float("CHAT_STREAM_BUDGET", default=1000.0)
# A streaming reply's partial text is saved at least this often (seconds).
CHAT_SAVE_INTERVAL = env.float("CHAT_SAVE_INTERVAL", default=1.0)
# A reply with no owner recorded (chat.leases), still streaming with no save for
# this long (seconds), lost its process and is marked interrupted.
CHAT_STALE_AFTER = env.float("CHAT_STALE_AFTER", default=15.0)

# Fan-out. A tab that reads slowly gets only the newest version of each
# message; past this many different frames waiting it is closed, to reconnect.
CHAT_OUTBOX_LIMIT = env.int("CHAT_OUTBOX_LIMIT", default=50)
# Bytes of kernel send buffer per websocket (0: the kernel's own sizing, which
# grows to megabytes for a client that stops reading).
CHAT_SOCKET_SEND_BUFFER = env.int("CHAT_SOCKET_SEND_BUFFER", default=128 * 1024)
# Catch-up requests per socket: a burst, then this many a second.
CHAT_SYNC_BURST = env.int("CHAT_SYNC_BURST", default=5)
CHAT_SYNC_RATE = env.float("CHAT_SYNC_RATE", default=1.0)
# Operations: proxy, health, metrics, logs and the Content-Security-Policy.
# /healthz and /metrics come first: load balancers and Prometheus reach each
# process by its address, over plain HTTP (chat/health.py).
MIDDLEWARE.insert(0, "chat.health.operations_middleware")
# collectstatic writes here, for a proxy to serve (deploy/nginx.conf); the app
# itself serves from the finders, so nothing needs collecting without a proxy.
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default="") or None
# /metrics answers loopback clients, and others sending "Authorization: Bearer <token>".
CHAT_METRICS_TOKEN = env.str("CHAT_METRICS_TOKEN", default="")
LOG_FORMAT = env.str("DJANGO_LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"DJANGO_LOG_FORMAT must be text or json, not {LOG_FORMAT!r}.")
if LOG_FORMAT == "json":
    # The console handler's one formatter, as JSON.
    LOGGING["formatters"] = {"plain": {"()": "chat.observability.JsonFormatter"}}

INSTALLED_APPS.append("csp")
MIDDLEWARE.insert(
    MIDDLEWARE.index("whitenoise.middleware.WhiteNoiseMiddleware") + 1,
    "csp.middleware.CSPMiddleware",
)
# The pages load only their own scripts and stylesheets: no inline code, no eval.
# 'self' covers same-origin websockets in current browsers; the hosts are listed
# for those that do not (IPv6 literals cannot be written in a policy). A host
# with a leading dot is also its subdomains, as in ALLOWED_HOSTS.
_WEBSOCKET_HOSTS = [
    name
    for host in ALLOWED_HOSTS
    if host != "*" and not host.startswith("[")
    for name in ((host[1:], f"*{host}") if host.startswith(".") else (host,))
]
_WEBSOCKET_SOURCES = [
    f"{scheme}://{host}:*" for host in _WEBSOCKET_HOSTS for scheme in ("ws", "wss")
]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.constants.SELF],
        "script-src": [csp.constants.SELF],
        "style-src": [csp.constants.SELF],
        "img-src": [csp.constants.SELF],
        "connect-src": [csp.constants.SELF, *_WEBSOCKET_SOURCES],
        "frame-ancestors": [csp.constants.NONE],
        "form-action": [csp.constants.SELF],
        "base-uri": [csp.constants.SELF],
        "object-src": [csp.constants.NONE],
    }
}
# Per-room model and temperature, and what replies cost. A room starts with
# OPENAI_MODEL and OPENAI_TEMPERATURE; the room form offers the server's models
# (GET /v1/models), remembered for CHAT_MODELS_CACHE seconds.
OPENAI_TEMPERATURE = env.float("OPENAI_TEMPERATURE", default=1.0)
CHAT_MODELS_CACHE = env.float("CHAT_MODELS_CACHE", default=300.0)
# US dollars per million tokens, as JSON: {"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}.
# Without a price for a reply's model, only its token counts are shown.
try:
    CHAT_PRICES = env.json("CHAT_PRICES", default={})
except ValueError as exc:
    raise ImproperlyConfigured(
        'CHAT_PRICES is not JSON; write it as {"model": {"prompt": 0.15, "completion": 0.6}}.'
    ) from exc
if not isinstance(CHAT_PRICES, dict) or not all(
    isinstance(price, dict) and {"prompt", "completion"} <= price.keys()
    for price in CHAT_PRICES.values()
):
    raise ImproperlyConfigured(
        'CHAT_PRICES must map each model to {"prompt": ..., "completion": ...} '
        "(US dollars per million tokens)."
    )
if DATABASES["default"]["ENGINE"] == "pyhub.db.backends.sqlite3":
    # Message search's triggers make every message write also write the search
    # index. A transaction that takes SQLite's write lock only at its first write
    # can then deadlock with another process's and fail at once ("database is
    # locked"); taking the lock at BEGIN makes two processes wait their turn.
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
    # A streaming reply is saved about once a second. With SQLite's default
    # rollback journal every commit syncs the disk twice (15 ms a save measured
    # on a busy disk, holding the one database thread); write-ahead logging with
    # NORMAL syncs at checkpoints only, and still survives a killed process.
    # Its connections are kept: the last one to close checkpoints the log, and
    # reopening costs the extensions' loading each time.
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    )
    DATABASES["default"].setdefault("CONN_MAX_AGE", None)
# Shared rooms: presence, typing, the AI's queue.
# At most this many questions wait for the AI per room; more are refused, unsaved.
CHAT_QUEUE_LIMIT = env.int("CHAT_QUEUE_LIMIT", default=5)
# A socket not heard from for this long (seconds) is no longer shown as present:
# each process refreshes its sockets every quarter of it, so a crashed one's expire.
CHAT_PRESENCE_TIMEOUT = env.float("CHAT_PRESENCE_TIMEOUT", default=8.0)
# Typing notices: at most one per user per interval (seconds) reaches the room.
CHAT_TYPING_INTERVAL = env.float("CHAT_TYPING_INTERVAL", default=2.0)
# Restarts and crashes. Each server process holds a lease (in Redis, else in the
# database) renewed every quarter of CHAT_LEASE_TTL seconds; when it lapses, any
# live process marks that process's streaming replies interrupted.
CHAT_LEASE_TTL = env.float("CHAT_LEASE_TTL", default=2.0)
# On SIGTERM or SIGINT, replies in progress may finish for this long (seconds);
# what is left is then saved in full and marked interrupted before the process exits.
CHAT_SHUTDOWN_GRACE = env.float("CHAT_SHUTDOWN_GRACE", default=20.0)
# Tests of the turn supervisor: the step of a turn that fails once per process (chat.faults).
CHAT_FAULT_POINT = env.str("CHAT_FAULT_POINT", default="")


@overload
def _tokens(name: str, *, default: int, ceiling: int) -> int: ...
@overload
def _tokens(name: str, *, default: None, ceiling: int) -> int | None: ...
def _tokens(name: str, *, default: int | None, ceiling: int) -> int | None:
    """A positive whole number of tokens from the environment; unset is `default`."""
    raw = env.str(name, default="").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a whole number of tokens, not {raw!r}."
        ) from None
    if not 0 < value <= ceiling:
        raise ImproperlyConfigured(f"{name} must be between 1 and {ceiling:,}, not {value:,}.")
    return value


# Spend. Every request asks for at most CHAT_MAX_REPLY_TOKENS (a room may set fewer),
# and its prompt fits CHAT_CONTEXT_TOKENS (a room may set its own): the oldest
# messages are left out first.
CHAT_MAX_REPLY_TOKENS = _tokens("CHAT_MAX_REPLY_TOKENS", default=4096, ceiling=1_000_000)
CHAT_CONTEXT_TOKENS = _tokens("CHAT_CONTEXT_TOKENS", default=128_000, ceiling=10_000_000)
# The window holds the prompt and the reply (chat.limits): a ceiling that fills it leaves no prompt.
if CHAT_CONTEXT_TOKENS <= CHAT_MAX_REPLY_TOKENS:
    raise ImproperlyConfigured(
        f"CHAT_CONTEXT_TOKENS ({CHAT_CONTEXT_TOKENS:,}) must be larger than CHAT_MAX_REPLY_TOKENS "
        f"({CHAT_MAX_REPLY_TOKENS:,}): the window holds the prompt and the reply."
    )
# Tokens each user may spend a day and a month (UTC); unset is unlimited. The admin
# can set other budgets per user.
CHAT_USER_TOKENS_PER_DAY = _tokens("CHAT_USER_TOKENS_PER_DAY", default=None, ceiling=10**12)
CHAT_USER_TOKENS_PER_MONTH = _tokens("CHAT_USER_TOKENS_PER_MONTH", default=None, ceiling=10**12)
# "open": anyone may sign up; "closed": accounts come from the administrator (and invite links).
CHAT_SIGNUP = env.str("CHAT_SIGNUP", default="open")
if CHAT_SIGNUP not in ("open", "closed"):
    raise ImproperlyConfigured(f"CHAT_SIGNUP must be open or closed, not {CHAT_SIGNUP!r}.")
# Invite links expire after this many days unless their owner chooses otherwise.
CHAT_INVITE_DAYS = env.int("CHAT_INVITE_DAYS", default=7)
if not 0 < CHAT_INVITE_DAYS <= 365:
    raise ImproperlyConfigured(f"CHAT_INVITE_DAYS must be 1 to 365, not {CHAT_INVITE_DAYS}.")
