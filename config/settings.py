"""Applause settings: one file, everything from the environment.

Development defaults are safe and need no server (SQLite in WAL mode, a filesystem Celery
broker, localstripe on 127.0.0.1:8420). Production (``DEBUG`` off) refuses to start without
a real ``SECRET_KEY``.
"""

import os
import re
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
TESTING = env.bool("APPLAUSE_TESTING", default="pytest" in sys.modules)

_DEV_SECRET = "dev-only-insecure-secret-key-applause-0123456789abcdefghijklmnop"  # noqa: S105 (DEBUG and tests only)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if DEBUG or TESTING:
        SECRET_KEY = _DEV_SECRET
    else:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# How many proxies of ours (load balancer, CDN) append to X-Forwarded-For in front of the app:
# the client's address is that many entries from the right (accounts/client_address.py).
# 0 ignores the header (nothing in front, or a proxy that sets REMOTE_ADDR itself).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "djmoney",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "accounts",
    "wallets",
    "gifts",
    "creators",
    "payouts",
    "memberships",
    "moderation",
    "notifications",
    "staff",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.HotPathMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ApiJsonNotFoundMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"

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
                "config.context_processors.portal",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Database -------------------------------------------------------------------------------
VAR_DIR.mkdir(exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Writers queue for the lock up front instead of failing mid-transaction.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # Off by default: the check is a `SELECT 1` round trip at the start of every request. A
    # connection PostgreSQL dropped (a restart) then fails one request (503) and is replaced;
    # behind PgBouncer the web servers' connections survive a PostgreSQL restart anyway.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
    # A database host that does not answer (down, partitioned) fails a request after this
    # many seconds with 503 database_unavailable instead of hanging a web thread.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
    # How DATABASE_URL is pooled: "session" (PostgreSQL itself, or PgBouncer in session mode)
    # or "transaction" (PgBouncer in transaction mode). Transaction pooling may run each
    # statement outside a transaction on another server connection, where a server-side
    # cursor held across them (QuerySet.iterator() outside atomic()) does not exist: Django's
    # documented remedy is DISABLE_SERVER_SIDE_CURSORS (.iterator() then reads the whole
    # result at once). The app's bulk reads page with keysets (config/keyset.py) and work
    # either way; this makes any other .iterator() safe too.
    DATABASE_POOL_MODE = env.str("DATABASE_POOL_MODE", default="session")
    if DATABASE_POOL_MODE not in ("session", "transaction"):
        raise ImproperlyConfigured(
            f"DATABASE_POOL_MODE={DATABASE_POOL_MODE!r}: one of 'session', 'transaction'"
        )
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_POOL_MODE == "transaction"
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
if IS_POSTGRES:
    # The lock connection (wallets/services/locks.py): the session advisory locks held across
    # transactions (payout batch, reconciliation, a recharge's Stripe calls), one short-lived
    # connection per holder. Behind PgBouncer in transaction pooling DATABASE_DIRECT_URL must
    # reach PostgreSQL directly (or a PgBouncer pool in session mode); by default the same
    # database as DATABASE_URL. Tests lock inside the test database (a mirror of "default").
    _locks = (
        env.db("DATABASE_DIRECT_URL")
        if env.str("DATABASE_DIRECT_URL", default="")
        else dict(DATABASES["default"])
    )
    DATABASES["locks"] = {
        **_locks,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "OPTIONS": {
            **_locks.get("OPTIONS", {}),
            "connect_timeout": DATABASES["default"]["OPTIONS"]["connect_timeout"],
        },
        "TEST": {"MIRROR": "default"},
    }
# Covering indexes (INCLUDE) are a PostgreSQL optimisation; SQLite just ignores the extra columns.
SILENCED_SYSTEM_CHECKS = [] if IS_POSTGRES else ["models.W040"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Lockout after repeated failed logins (accounts/lockout.py): API, portal and admin alike.
AUTHENTICATION_BACKENDS = [
    "accounts.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Per username + address: after LOGIN_LOCKOUT_FAILURES failures that pair is locked for
# LOGIN_LOCKOUT_FIRST_SECONDS, doubling with each further failure up to LOGIN_LOCKOUT_SECONDS.
LOGIN_LOCKOUT_FAILURES = env.int("LOGIN_LOCKOUT_FAILURES", default=5)
LOGIN_LOCKOUT_FIRST_SECONDS = env.int("LOGIN_LOCKOUT_FIRST_SECONDS", default=60)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
# Per username from every address (a botnet): far above the pair limit, so a stranger who
# knows a username cannot lock its owner out; addresses that signed in as it recently are spared.
LOGIN_LOCKOUT_USERNAME_FAILURES = env.int("LOGIN_LOCKOUT_USERNAME_FAILURES", default=100)
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/wallet/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Cache (throttling, leaderboards) -------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and TESTING and os.environ.get("PYTEST_XDIST_WORKER"):
    # Each pytest-xdist worker gets its own Redis database, so one can flush it freely.
    REDIS_URL = (
        REDIS_URL.rsplit("/", 1)[0]
        + "/"
        + str(2 + int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw")))
    )
if REDIS_URL:
    # django-redis, failing open: with Redis down, reads miss, writes are dropped and throttle
    # counters start from zero (logged), so the API keeps answering what needs no Redis.
    # Short socket timeouts keep a dead Redis from stalling every request.
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="applause"),
            "OPTIONS": {
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.5),
                "SOCKET_TIMEOUT": env.float("REDIS_TIMEOUT", default=0.5),
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem"):
    BROKER_DIR.mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        # Broadcast/exchange state, which kombu would otherwise write to ./control.
        "control_folder": str(BROKER_DIR / "control"),
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "config.beat:DatabaseScheduler"
# The weekly payout batch and the hourly reconciliation are database rows (seeded by
# payouts/migrations/0002) so staff can change them in the admin; beat would overwrite
# entries listed here on every start.
CELERY_BEAT_SCHEDULE = {
    "release-earnings": {
        "task": "creators.tasks.release_earnings_task",
        "schedule": crontab(minute=5),
    },
    "rollup-hot-accounts": {
        "task": "wallets.tasks.rollup_hot_accounts_task",
        "schedule": timedelta(minutes=5),
    },
    # Exactly once per period however often it runs (memberships/services/renewals.py).
    "renew-memberships": {
        "task": "memberships.tasks.renew_memberships_task",
        "schedule": timedelta(minutes=env.int("MEMBERSHIP_RENEWAL_EVERY_MINUTES", default=10)),
    },
    # Recharges whose client never came back after a crash or an outage (wallets.services.purchase).
    "finish-abandoned-recharges": {
        "task": "wallets.tasks.recharges_finish_abandoned_task",
        "schedule": timedelta(minutes=5),
    },
    # Payouts held for a recently changed destination go out once the hold has passed.
    "send-released-payouts": {
        "task": "payouts.tasks.payouts_send_released_task",
        "schedule": crontab(minute=20),
    },
}

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.auth.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # The API speaks JSON only (the schema says so; anything else is 415).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_SCHEMA_CLASS": "config.openapi_schema.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["config.throttles.MoneyThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "auth": env.str("THROTTLE_AUTH", default="20/min"),
        "money": env.str("THROTTLE_MONEY", default="600/min"),
        "recharge": env.str("THROTTLE_RECHARGE", default="20/hour"),
        "signup": env.str("THROTTLE_SIGNUP", default="20/hour"),
        "live_open": env.str("THROTTLE_LIVE_OPEN", default="60/min"),
        "password_reset": env.str("THROTTLE_PASSWORD_RESET", default="5/hour"),
    },
    # Only for DRF throttles of others: ours read accounts.client_address (the same count).
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# A rate of "off" switches that throttle off (DRF skips a throttle whose rate is None: no
# cache round trip at all); the benchmarks do that rather than setting a huge rate.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    scope: None if str(rate).strip().lower() in ("off", "none", "") else rate
    for scope, rate in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].items()
}
# API tokens (django-rest-knox): one per sign-in (per device), stored as a SHA-512 digest,
# expiring after API_TOKEN_TTL_HOURS; ``Authorization: Token <key>`` as before.
# A verified token (with its user) is cached this long under its digest (0: off); revoking it
# or saving its user deletes the entry (accounts/auth.py).
API_TOKEN_CACHE_SECONDS = env.int("API_TOKEN_CACHE_SECONDS", default=60)
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.int("API_TOKEN_TTL_HOURS", default=24 * 30)),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}
# Password reset: links work this long; at most this many reset mails per address an hour.
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT_MINUTES", default=60) * 60
PASSWORD_RESET_MAILS_PER_HOUR = env.int("PASSWORD_RESET_MAILS_PER_HOUR", default=3)
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Applause API",
    "DESCRIPTION": "Coins, gifts, creator earnings and payouts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.document_errors",
        "config.openapi.tag_by_resource",
        "config.openapi_examples.add_request_examples",
    ],
}

# --- Money ----------------------------------------------------------------------------------
CURRENCIES = ("USD", "EUR", "GBP")
CURRENCY_CHOICES = [("USD", "US Dollar"), ("EUR", "Euro"), ("GBP", "Pound sterling")]
DEFAULT_CURRENCY = "USD"
# Coins spent on a gift turn into this many diamonds per coin (integer math: D = C * num // den).
DIAMONDS_PER_COIN_NUM = env.int("DIAMONDS_PER_COIN_NUM", default=1)
DIAMONDS_PER_COIN_DEN = env.int("DIAMONDS_PER_COIN_DEN", default=1)
DIAMOND_VALUE = Decimal(env.str("DIAMOND_VALUE", default="0.005"))  # USD per diamond
PAYOUT_CURRENCY = env.str("PAYOUT_CURRENCY", default="USD")
PAYOUT_MINIMUM = Decimal(env.str("PAYOUT_MINIMUM", default="10"))
PAYOUT_APPROVAL_ABOVE = Decimal(env.str("PAYOUT_APPROVAL_ABOVE", default="1000"))
EARNINGS_HOLD_DAYS = env.int("EARNINGS_HOLD_DAYS", default=7)
# release_earnings moves this many creators per database transaction (PostgreSQL).
EARNINGS_RELEASE_CHUNK = env.int("EARNINGS_RELEASE_CHUNK", default=5000)
# Chunks of the release run at once, each on its own database connection (PostgreSQL).
EARNINGS_RELEASE_WORKERS = env.int("EARNINGS_RELEASE_WORKERS", default=2)
MINIMUM_AGE = 18
DAILY_PURCHASE_LIMIT = env.int("DAILY_PURCHASE_LIMIT", default=500_000)  # coins per day
DAILY_GIFT_LIMIT = env.int("DAILY_GIFT_LIMIT", default=1_000_000)  # coins per day
CUSTOM_COINS_MIN = 100
CUSTOM_COINS_MAX = 100_000
# Price of one coin for custom amounts, per currency.
COIN_UNIT_PRICE = {
    "USD": Decimal(env.str("COIN_UNIT_PRICE_USD", default="0.0143")),
    "EUR": Decimal(env.str("COIN_UNIT_PRICE_EUR", default="0.0133")),
    "GBP": Decimal(env.str("COIN_UNIT_PRICE_GBP", default="0.0115")),
}
# Hot-account rollups only fold entries older than this, so a transaction that is still open
# can never commit an entry into an interval the checkpoint already covers.
LEDGER_ROLLUP_LAG_SECONDS = env.int("LEDGER_ROLLUP_LAG_SECONDS", default=300)

# --- Stripe ---------------------------------------------------------------------------------
# The defaults are public (they are in this file): they only ever talk to localstripe.
# With DEBUG off, wallets/checks.py refuses to start while any of these is still a built-in
# default, or the API base or Stripe.js URL is not HTTPS (docs/operations.md).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="sk_test_applause_local")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="pk_test_applause_local")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="whsec_applause_local")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="http://127.0.0.1:8420")
STRIPE_JS_URL = env.str("STRIPE_JS_URL", default=f"{STRIPE_API_BASE}/js.stripe.com/v3/")
# Offline (localstripe's Stripe.js stand-in): the portal shows its own card fields, styled like
# the page, and turns them into a card with the stand-in's token endpoint. With Stripe's own
# Stripe.js (production) the card form is always Stripe's Card Element.
STRIPE_OFFLINE_CARD_FORM = not STRIPE_JS_URL.startswith("https://js.stripe.com/")
STRIPE_BUILTIN_DEFAULTS = {
    "STRIPE_SECRET_KEY": "sk_test_applause_local",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_applause_local",
    "STRIPE_WEBHOOK_SECRET": "whsec_applause_local",
    "STRIPE_API_BASE": "http://127.0.0.1:8420",
    # Unset, the Stripe.js URL follows the API base (right for localstripe only; the check
    # refuses that derived value too).
    "STRIPE_JS_URL": "http://127.0.0.1:8420/js.stripe.com/v3/",
}
# Only for production-mode runs against localstripe on this machine (``make bench``,
# ``make chaos``, ``scripts/with_services.sh``): with a loopback API base, the refusals above
# become warnings. Never set it in production: payments would go to a fake.
STRIPE_ALLOW_LOCALSTRIPE = env.bool("STRIPE_ALLOW_LOCALSTRIPE", default=False)
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)
STRIPE_TIMEOUT = env.float("STRIPE_TIMEOUT", default=10.0)
# A recharge still ``creating`` (or a self refund still ``requested``) this long after its
# first request (its client never retried) is finished by the beat's
# finish-abandoned-recharges and by reconciliation.
RECHARGE_ABANDONED_AFTER_SECONDS = env.int("RECHARGE_ABANDONED_AFTER_SECONDS", default=900)
# Where the admin links a PaymentIntent (``/test`` is added for test-mode keys).
STRIPE_DASHBOARD_URL = env.str("STRIPE_DASHBOARD_URL", default="https://dashboard.stripe.com")

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG and not TESTING:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# /readyz checks its dependencies at most this often per process (cached result).
READYZ_CACHE_SECONDS = env.int("READYZ_CACHE_SECONDS", default=30)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The access log (config.middleware) already has every 4xx; keep 5xx only here, so a
        # request is logged once, not two or three times.
        "django.request": {"level": "ERROR"},
    },
}

# --- Extension points -----------------------------------------------------------------------
# Our own apps, in dependency order. For each, seed_demo runs ``<app>.demo.seed`` and
# verify_ledger runs the functions in ``<app>.ledger_checks.EXTRA_CHECKS`` when they exist.
LOCAL_APPS = [
    "accounts",
    "wallets",
    "gifts",
    "creators",
    "payouts",
    "memberships",
    "moderation",
    "notifications",
    "staff",
]

# The apps' own settings, in the order of the apps' layers (README, Architecture).

# --- Wallets: recharges and Stripe (wallets app) --------------------------------------------------
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["RechargeStatusEnum"] = (
    "wallets.models.RECHARGE_PUBLIC_CHOICES"
)
# Card testing (wallets/services/declines.py): declined card payments allowed per user, per
# client address and per card fingerprint in a window; past it, 429 too_many_declines.
RECHARGE_DECLINES_MAX = env.int("RECHARGE_DECLINES_MAX", default=5)
RECHARGE_DECLINE_WINDOW_SECONDS = env.int("RECHARGE_DECLINE_WINDOW_SECONDS", default=3600)

# --- Wallets: viewer protections (wallets app) ----------------------------------------------------
# A viewer's own higher spending limit (or removing one) takes effect this many hours later.
SPENDING_LIMIT_RAISE_DELAY_HOURS = env.int("SPENDING_LIMIT_RAISE_DELAY_HOURS", default=24)
# The portal asks "are you sure?" for purchases above this many coins (a viewer's own
# ``confirm_above`` replaces it, and then the API asks for ``confirm: true`` as well).
COOLING_OFF_ABOVE = env.int("COOLING_OFF_ABOVE", default=5_000)
# A viewer may refund a recharge whose coins are all unspent within this many hours.
SELF_REFUND_WINDOW_HOURS = env.int("SELF_REFUND_WINDOW_HOURS", default=48)
# Who bears a chargeback on coins already gifted: "absorb" (the platform: chargeback losses)
# or "clawback_pending" (the gifted creators' pending diamonds, never below zero; the rest
# is absorbed). Available and paid-out diamonds are never touched.
CHARGEBACK_POLICY = env.str("CHARGEBACK_POLICY", default="clawback_pending")
if CHARGEBACK_POLICY not in ("absorb", "clawback_pending"):
    raise ImproperlyConfigured("CHARGEBACK_POLICY must be 'absorb' or 'clawback_pending'.")

# --- Gifts and creators (gifts and creators apps) -------------------------------------------------
# Words refused in gift messages (case-insensitive, whole words); comma-separated in the env.
GIFT_MESSAGE_BLOCKLIST = env.list("GIFT_MESSAGE_BLOCKLIST", default=["scam", "nazi", "kys"])
# On PostgreSQL a gift is one call of the SQL function gift_send_v4 (issue #15, #19, #20); off, or on
# SQLite, the Python reference (gifts/services/reference.py) sends it (same rules, more
# round trips).
GIFT_SEND_SQL = env.bool("GIFT_SEND_SQL", default=True)
# The gift's hot HTTP path (issue #15): a token-authenticated POST gifts/send/ is served by a
# plain Django view ahead of the session/CSRF/auth/OTP/messages middlewares and DRF, with the
# same contract (gifts/api_hot.py); off, every request takes the DRF view.
API_HOT_PATH = env.bool("API_HOT_PATH", default=True)
API_HOT_PATHS = {"/api/v1/gifts/send/": "gifts.api_hot.gift_send_hot"}
# Leaderboards are cached this long (a hot stream would otherwise recompute them per viewer).
LEADERBOARD_CACHE_SECONDS = env.int("LEADERBOARD_CACHE_SECONDS", default=5)
LEADERBOARD_SIZE = env.int("LEADERBOARD_SIZE", default=10)

# --- Goals (gifts app, docs/goals.md) -------------------------------------------------------------
GOAL_DEADLINE_MAX_DAYS = env.int("GOAL_DEADLINE_MAX_DAYS", default=90)
GOAL_DEADLINE_MIN_MINUTES = env.int("GOAL_DEADLINE_MIN_MINUTES", default=5)
GOALS_OPEN_MAX = env.int("GOALS_OPEN_MAX", default=20)
# Goals whose deadline passed are settled (all-or-nothing: paid or refunded) this often.
CELERY_BEAT_SCHEDULE["settle-goals"] = {
    "task": "gifts.tasks.goals_settle_due_task",
    "schedule": timedelta(seconds=env.int("GOAL_SETTLE_EVERY_SECONDS", default=60)),
}

# --- Live gift feed (gifts/live.py) ---------------------------------------------------------------
# A combo is the same sender, gift and live within this many seconds of the previous hit.
LIVE_COMBO_SECONDS = env.int("LIVE_COMBO_SECONDS", default=5)
# A "go live" session left open longer than this (a forgotten switch) no longer counts as live.
LIVE_MAX_HOURS = env.int("LIVE_MAX_HOURS", default=12)
# Open live streams per process. Under WSGI (``make serve``: gthread workers) each holds a
# thread for up to LIVE_STREAM_MAX_SECONDS, so by default they may take half the worker's
# threads (WEB_THREADS) and the API always keeps the rest. Under ASGI a stream is a coroutine.
LIVE_SYNC_STREAMS_MAX = env.int(
    "LIVE_SYNC_STREAMS_MAX", default=max(1, env.int("WEB_THREADS", default=4) // 2)
)
LIVE_ASYNC_STREAMS_MAX = env.int("LIVE_ASYNC_STREAMS_MAX", default=500)
# Across every process (leases in Redis): open streams per client address (past it 429
# live_streams_limit) and per (creator, live) (503 live_streams_busy). A stream with no gift
# for LIVE_STREAM_IDLE_SECONDS ends and EventSource reconnects (Last-Event-ID: nothing missed).
LIVE_STREAMS_PER_ADDRESS = env.int("LIVE_STREAMS_PER_ADDRESS", default=8)
LIVE_STREAMS_PER_LIVE = env.int("LIVE_STREAMS_PER_LIVE", default=200)
LIVE_STREAM_IDLE_SECONDS = env.int("LIVE_STREAM_IDLE_SECONDS", default=60)
# A stream polls the database this often (one indexed query) and ends after
# LIVE_STREAM_MAX_SECONDS (the overlay reconnects with Last-Event-ID: nothing is missed).
LIVE_POLL_SECONDS = env.float("LIVE_POLL_SECONDS", default=0.4)
LIVE_STREAM_MAX_SECONDS = env.int("LIVE_STREAM_MAX_SECONDS", default=3600)
# A gift whose unit price is at least this many coins gets the overlay's big animation.
LIVE_BIG_GIFT_COINS = env.int("LIVE_BIG_GIFT_COINS", default=1000)
# An open stream refreshes the goals it shows this often (a deadline closes one without a gift).
LIVE_GOAL_REFRESH_SECONDS = env.float("LIVE_GOAL_REFRESH_SECONDS", default=5.0)


# --- Live moments: pinned messages and creator moderation (moderation app) ------------------------
# A gift with a message on a live is pinned on the overlay for a time that grows with its
# coins: "min_coins:seconds:#colour" per tier, comma separated, e.g. "100:30:#1e88e5,...".
def _pin_tiers(raw: str) -> list[tuple[int, int, str]]:
    tiers = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            coins, seconds, colour = part.split(":", 2)
            tier = (int(coins), int(seconds), colour.strip())
        except ValueError:
            raise ImproperlyConfigured(f"LIVE_PIN_TIERS: {part!r} is not coins:seconds:#colour.")
        if tier[0] < 1 or tier[1] < 1 or not re.fullmatch(r"#[0-9A-Fa-f]{6}", tier[2]):
            raise ImproperlyConfigured(f"LIVE_PIN_TIERS: {part!r} is not coins:seconds:#colour.")
        tiers.append(tier)
    return sorted(tiers)


LIVE_PIN_TIERS = _pin_tiers(
    env.str(
        "LIVE_PIN_TIERS",
        default="100:30:#1e88e5,500:60:#00897b,1000:120:#f9a825,2000:180:#ef6c00,5000:300:#d81b60",
    )
)
# How often an open live feed looks for pins that start or end and for moderation decisions.
LIVE_PIN_POLL_SECONDS = env.float("LIVE_PIN_POLL_SECONDS", default=1.0)

# --- Payouts (payouts app) ------------------------------------------------------------------------
# Stripe Connect endpoints (accounts, account links, transfers). localstripe has no Connect, so
# tests point this at payouts/tests/connect_fake.py; production leaves it at Stripe's API.
STRIPE_CONNECT_API_BASE = env.str("STRIPE_CONNECT_API_BASE", default=STRIPE_API_BASE)
PAYOUT_CONNECT_COUNTRY = env.str("PAYOUT_CONNECT_COUNTRY", default="US")
# Payouts that would take a creator's year past this (in PAYOUT_CURRENCY) need a tax form.
PAYOUT_TAX_FORM_THRESHOLD = Decimal(env.str("PAYOUT_TAX_FORM_THRESHOLD", default="600"))
PAYOUT_RECONCILE_DAYS = env.int("PAYOUT_RECONCILE_DAYS", default=30)
# Payment reconciliation lists what Stripe created since the last clean run, less this overlap
# (clock skew, payments created while that run listed).
RECONCILE_OVERLAP_SECONDS = env.int("RECONCILE_OVERLAP_SECONDS", default=900)
PAYOUT_SEND_MAX_RETRIES = env.int("PAYOUT_SEND_MAX_RETRIES", default=8)
# The batch creates payouts this many creators per database transaction (PostgreSQL), and
# queues their sends one Celery task per PAYOUT_SEND_TASK_SIZE payouts.
PAYOUT_BATCH_CHUNK = env.int("PAYOUT_BATCH_CHUNK", default=5000)
# Chunks of the batch run at once, each on its own database connection (PostgreSQL). Cores + 1:
# while one chunk waits on its commit's flush the others use the cores (100k creators on 2
# cores, durable, back to back: 3 at once 22.8 s, 2 at once 28.3 s; BENCHMARKS.md).
PAYOUT_BATCH_WORKERS = env.int("PAYOUT_BATCH_WORKERS", default=(os.cpu_count() or 1) + 1)
PAYOUT_SEND_TASK_SIZE = env.int("PAYOUT_SEND_TASK_SIZE", default=500)
# A payout still requested this long after it was made lost its send task (the broker was away
# when it was queued): the hourly sweep sends it.
PAYOUT_SEND_SWEEP_AFTER_MINUTES = env.int("PAYOUT_SEND_SWEEP_AFTER_MINUTES", default=10)
# A payout to a destination (IBAN, Stripe account) set or changed less than this many hours ago
# waits (held, the creator sees until when): a stolen login cannot redirect the next payout.
PAYOUT_DESTINATION_HOLD_HOURS = env.int("PAYOUT_DESTINATION_HOLD_HOURS", default=72)
# "Cash out now": the fee, in percent of the payout's value, kept from an instant payout.
INSTANT_PAYOUT_FEE_PCT = Decimal(env.str("INSTANT_PAYOUT_FEE_PCT", default="1.5"))

# --- Memberships (memberships app) ----------------------------------------------------------------
# A renewal the wallet cannot pay is retried every MEMBERSHIP_RETRY_MINUTES for
# MEMBERSHIP_GRACE_DAYS, then the membership lapses.
MEMBERSHIP_GRACE_DAYS = env.int("MEMBERSHIP_GRACE_DAYS", default=3)
MEMBERSHIP_RETRY_MINUTES = env.int("MEMBERSHIP_RETRY_MINUTES", default=60)
# A tier's new price reaches existing members at their first renewal this many days after it.
MEMBERSHIP_PRICE_NOTICE_DAYS = env.int("MEMBERSHIP_PRICE_NOTICE_DAYS", default=7)
MEMBERSHIP_TIER_MAX_COINS = env.int("MEMBERSHIP_TIER_MAX_COINS", default=1_000_000)
MEMBERSHIP_GIFT_MAX = env.int("MEMBERSHIP_GIFT_MAX", default=20)  # recipients per gift
# The renewal run on PostgreSQL: due memberships per set-based chunk (one transaction each),
# and how many chunks run at once, each on its own connection (1: one after the other).
MEMBERSHIP_RENEWAL_CHUNK = env.int("MEMBERSHIP_RENEWAL_CHUNK", default=1000)
MEMBERSHIP_RENEWAL_WORKERS = env.int("MEMBERSHIP_RENEWAL_WORKERS", default=2)
# Membership mails (receipts, grace, lapse, gifts, price changes): pending notices are written
# to the email outbox by this sweep (and right after each join, gift or cancel).
CELERY_BEAT_SCHEDULE["membership-notices"] = {
    "task": "memberships.tasks.membership_notices_send_task",
    "schedule": timedelta(minutes=1),
}

# --- Email and app webhooks (notifications app) ---------------------------------------------------
# The portal's public address, for links in emails (verification, unsubscribe, undo).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Applause <no-reply@applause.local>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
MAIL_DIR = Path(env.str("MAIL_DIR", default=str(VAR_DIR / "mail")))
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    from notifications.email_url import email_url_settings

    globals().update(email_url_settings(EMAIL_URL, mail_dir=MAIL_DIR))
elif DEBUG or TESTING:
    # make run: each message becomes one .eml file under var/mail/ (open it in a mail client).
    EMAIL_BACKEND = "notifications.backends.EmlFileBackend"
else:
    # Production without EMAIL_URL: the machine's own mail transfer agent (the Unix default).
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST, EMAIL_PORT = "localhost", 25
# Failed sends are retried with backoff (1 min, 2, 4, ... capped at an hour) this many times.
EMAIL_MAX_ATTEMPTS = env.int("EMAIL_MAX_ATTEMPTS", default=10)
# Sign-up verification links stay valid this long.
EMAIL_VERIFY_DAYS = env.int("EMAIL_VERIFY_DAYS", default=7)
CELERY_BEAT_SCHEDULE["email-outbox-flush"] = {
    "task": "notifications.tasks.email_outbox_flush_task",
    "schedule": timedelta(minutes=1),
}
# App webhooks: loopback and private addresses (and plain http) only in DEBUG and tests;
# production refuses them, after DNS resolution too (no env switch on purpose).
WEBHOOK_ALLOW_PRIVATE = DEBUG or TESTING
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=5.0)
# A delivery is retried with backoff (1 min, 2, 4 … 6 h) for this long; an endpoint that has
# failed for this long is disabled and its owner emailed.
WEBHOOK_RETRY_HOURS = env.int("WEBHOOK_RETRY_HOURS", default=72)
WEBHOOK_ENDPOINTS_MAX = env.int("WEBHOOK_ENDPOINTS_MAX", default=10)
CELERY_BEAT_SCHEDULE["webhook-flush"] = {
    "task": "notifications.tasks.webhook_flush_task",
    "schedule": timedelta(minutes=1),
}
CELERY_BEAT_SCHEDULE["weekly-earnings-digest"] = {
    "task": "payouts.tasks.weekly_digest_task",
    "schedule": crontab(minute=0, hour=7, day_of_week=1),
}

# --- Staff console (staff app) --------------------------------------------------------------------
# Manual credits above this many coins wait for a second finance user (maker-checker).
ADJUSTMENT_APPROVAL_ABOVE = env.int("ADJUSTMENT_APPROVAL_ABOVE", default=10_000)
# A signed-in admin session ends after this many hours, or after this many idle minutes.
ADMIN_SESSION_MAX_HOURS = env.int("ADMIN_SESSION_MAX_HOURS", default=12)
ADMIN_SESSION_IDLE_MINUTES = env.int("ADMIN_SESSION_IDLE_MINUTES", default=30)
# How long a staff member's one-time 2FA enrolment link works.
ENROL_LINK_TTL_HOURS = env.int("ENROL_LINK_TTL_HOURS", default=24)
# The largest refund (in coins) the support role may make; finance has no limit.
SUPPORT_REFUND_LIMIT_COINS = env.int("SUPPORT_REFUND_LIMIT_COINS", default=5_000)
