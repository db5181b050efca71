"""Settings, read from the environment with safe defaults for local use.

Django's own settings use the DJANGO_ prefix; service URLs and keys
(DATABASE_URL, REDIS_URL, OPENAI_*) are unprefixed, as their tools expect.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

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
# the in-memory layer (chat.apps warns about that at start-up).
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                # channels-redis silently drops messages past `capacity`, which
                # bounds each process's whole inbox, shared by all its rooms. Updates
                # are coalesced (CHAT_STREAM_INTERVAL), yet 50 replies in one process
                # lost thousands at 1,000 and none at 10,000 (docs/benchmark.md).
                "capacity": 10_000,
                "expiry": 30,
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
# A streaming reply's partial text is saved at least this often (seconds).
CHAT_SAVE_INTERVAL = env.float("CHAT_SAVE_INTERVAL", default=1.0)
# A reply with no owner recorded (chat.leases), still streaming with no save for
# this long (seconds), lost its process and is marked interrupted.
CHAT_STALE_AFTER = env.float("CHAT_STALE_AFTER", default=15.0)

# Restarts and crashes. Each server process holds a lease (in Redis, else in the
# database) renewed every quarter of CHAT_LEASE_TTL seconds; when it lapses, any
# live process marks that process's streaming replies interrupted.
CHAT_LEASE_TTL = env.float("CHAT_LEASE_TTL", default=2.0)
# On SIGTERM or SIGINT, replies in progress may finish for this long (seconds);
# what is left is then saved in full and marked interrupted before the process exits.
CHAT_SHUTDOWN_GRACE = env.float("CHAT_SHUTDOWN_GRACE", default=20.0)
