"""Autoriza's one settings module.

Everything is read from the environment (django-environ), with an embedded default that needs no
server: SQLite (WAL, busy timeout, immediate transactions) and Celery's filesystem broker, still
consumed by a real, separate `celery worker` process. `DATABASE_URL=postgres://…` and
`REDIS_URL=redis://…` switch to PostgreSQL and Redis with no other change. Every variable is listed
with its default in the README.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from sii_bot.settings import JOB_GRACE_SECONDS, SiiSettings

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A `.env` beside manage.py is optional; the real environment always wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)

# Runtime files of the embedded default (SQLite, broker folders, sandbox state, demo PKI).
VAR_DIR = Path(env.str("AUTORIZA_VAR_DIR", default=str(BASE_DIR / "var")))

_DEV_SECRET_KEY = "django-insecure-autoriza-development-only"
SECRET_KEY: str = env.str("DJANGO_SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    # Failing here, at start, beats signing sessions with a guessable key in production.
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")

ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "csp",
    "onboarding",
]

MIDDLEWARE = [
    # First, so a request's measured duration includes every other middleware (portal.metrics).
    "portal.metrics.RequestLatencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "onboarding.middleware.HtmxSessionEndedMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# An empty DATABASE_URL means "the embedded default", as if it were unset.
DATABASE_URL: str = env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'autoriza.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write concurrently: WAL lets readers run during a write, the
    # busy timeout makes a writer wait instead of failing, and IMMEDIATE transactions take the write
    # lock up front so two writers never deadlock on a lock upgrade.
    # Tests use a file (not :memory:) so a real worker process can share the test database; one file
    # per test process, so concurrent test runs never collide.
    DATABASES["default"].setdefault("TEST", {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")})
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # Reuse each thread's connection (opening one and running the PRAGMAs cost ~0.9 ms, more than a
    # whole status poll); Django closes it after CONN_MAX_AGE seconds or on an error.
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    # Django's similarity check, with a message that names the fields our forms have (e-mail, name).
    {"NAME": "onboarding.validators.PasswordSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "es-cl"
LANGUAGES = [("es", "Español")]
TIME_ZONE = "America/Santiago"
USE_I18N = True
USE_TZ = True

# --- Static and uploads -----------------------------------------------------------------------
STATIC_URL = "static/"
# `manage.py demo` collects into its own var/ folder, so that demos with other var/ folders never share one.
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
# Certificates never touch disk: uploads stay in memory up to this size, and the form refuses
# anything larger than AUTORIZA_MAX_CERTIFICATE_BYTES long before that.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
AUTORIZA_MAX_CERTIFICATE_BYTES: int = env.int("AUTORIZA_MAX_CERTIFICATE_BYTES", default=64 * 1024)

# --- Security ---------------------------------------------------------------------------------
# HTTPS-only cookies and redirects are on whenever debug is off. AUTORIZA_HTTPS overrides: the demo
# (debug off, plain http on loopback) sets it to 0; tests set it behind a TLS-terminating proxy.
HTTPS: bool = env.bool("AUTORIZA_HTTPS", default=not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
# A Spanish page that says nothing was saved, instead of Django's technical 403.
CSRF_FAILURE_VIEW = "onboarding.views.common.csrf_failure"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 8
SECURE_SSL_REDIRECT = HTTPS and env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Container healthchecks and the Prometheus scraper reach the web service in plain http inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
BEHIND_PROXY: bool = env.bool("DJANGO_BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many proxies in front of the app append to X-Forwarded-For: the client's address (throttles,
# onboarding.client_address) is the entry the outermost one appended, counted from the right; entries
# left of it are the client's own words. 0, and always without DJANGO_BEHIND_PROXY: REMOTE_ADDR.
AUTORIZA_TRUSTED_PROXY_COUNT: int = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=1) if BEHIND_PROXY else 0
if AUTORIZA_TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("DJANGO_TRUSTED_PROXY_COUNT must be 0 or more.")

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# --- Celery -----------------------------------------------------------------------------------
REDIS_URL: str = env.str("REDIS_URL", default="")
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Must stay far above the hard time limit, or a long task is redelivered while it runs.
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        # A free slot asks its queues in sorted order: the live queue ("browser") before its
        # background lane ("browser-background"), so live jobs never wait behind background ones.
        "queue_order_strategy": "sorted",
    }
else:
    # Embedded default: a broker made of folders, shared by the web process and a real worker
    # process. Not a production transport; REDIS_URL replaces it.
    # The host part means nothing to this transport; naming one keeps kombu from warning at every start.
    CELERY_BROKER_URL = "filesystem://localhost/"
    # kombu's filesystem transport, serving a worker's queues in sorted order like Redis above
    # (portal/broker.py): live jobs first.
    CELERY_BROKER_TRANSPORT = "portal.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Without this kombu creates a `control/` folder in the current directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # kombu polls the folder once a second by default: a free browser slot then idles up to 1 s
        # before its next job (a third of a job's time). 0.1 s costs a directory listing per poll.
        "polling_interval": 0.1,
    }
# Results live in the database (the job row), never in the broker.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker's slots (--concurrency) are threads of one process that share one Playwright driver and
# one Chromium, each job in a browser context of its own (sii_bot.BrowserEngine): a slot then costs a
# renderer, not a driver + browser + Python process each (docs/performance.md). Threads get no hard
# time limits from Celery; the engine's own job budget (SII_JOB_TIMEOUT) cancels a job that runs over,
# and the reaper fails a job whose worker vanished. "prefork" (a driver and a browser per slot) is
# still accepted here; set it here, not with `--pool prefork`, which Celery reads as "the default"
# and overrides with this setting.
CELERY_WORKER_POOL = env.str("AUTORIZA_WORKER_POOL", default="threads")
CELERY_TASK_SOFT_TIME_LIMIT = env.int("AUTORIZA_JOB_SOFT_TIME_LIMIT", default=270)
CELERY_TASK_TIME_LIMIT = env.int("AUTORIZA_JOB_TIME_LIMIT", default=300)
# Queue names are settings so the reliability suite can run a real scheduler (beat) and real workers
# on queues of their own, beside whatever else uses the broker; production keeps these defaults.
CELERY_TASK_DEFAULT_QUEUE = env.str("AUTORIZA_DEFAULT_QUEUE", default="default")
AUTORIZA_BROWSER_QUEUE: str = env.str("AUTORIZA_BROWSER_QUEUE", default="browser")
# Live jobs go to the browser queue; background ones to the same name + "-background", which every
# worker of the browser queue consumes too, after it (portal/celery.py; docs/architecture.md).
# Access checks (services.access_checks) have a queue of their own, served by workers of their own,
# so a check reading 50 companies never sits in front of a client's live authorization.
AUTORIZA_ACCESS_CHECK_QUEUE: str = env.str("AUTORIZA_ACCESS_CHECK_QUEUE", default="access-checks")
CELERY_TASK_ROUTES = {
    "onboarding.tasks.enrollment_job_run": {"queue": AUTORIZA_BROWSER_QUEUE},
    "onboarding.tasks.access_check_run": {"queue": AUTORIZA_ACCESS_CHECK_QUEUE},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# --- Autoriza ---------------------------------------------------------------------------------
# Master keys wrap each certificate's data key: "id:base64-32-bytes[,id:base64…]", the first one
# is used for new records, the others only to open old ones (rotation). Validated at start by
# onboarding.apps, so a missing or malformed key fails loudly before any request is served.
AUTORIZA_MASTER_KEYS: str = env.str("AUTORIZA_MASTER_KEYS", default="")
AUTORIZA_CERT_RETENTION_DAYS: int = env.int("AUTORIZA_CERT_RETENTION_DAYS", default=7)
AUTORIZA_JOB_MAX_RETRIES: int = env.int("AUTORIZA_JOB_MAX_RETRIES", default=3)
# Job recovery thresholds (onboarding/services/jobs/recovery.py and dispatch.py). Settings, not constants, so that the
# reliability suite can prove the recovery paths in seconds; production keeps the defaults.
# - The SII job budget a job runs with (`jobs.bot.sii_settings_for`): SII_JOB_TIMEOUT for sandbox firms,
#   the preset's default for the real SII; the larger of the two bounds every job.
SII_JOB_TIMEOUT_SECONDS: float = max(
    SiiSettings.job_timeout_seconds, env.float("SII_JOB_TIMEOUT", default=SiiSettings.job_timeout_seconds)
)


# After the engine gives up on a job: its browser thread has up to 5 s to answer the cancellation,
# then the outcome is written. A live job may be that much later still.
JOB_OUTCOME_SLACK_SECONDS = 15.0


def job_silence_bound_seconds(*, pool: str, hard_time_limit: float, job_timeout: float) -> float:
    """The longest a live job can go without a heartbeat in a worker of `pool`: the engine gives up on
    a job `job_timeout` + JOB_GRACE_SECONDS after it starts (a job may report nothing in between) and
    its outcome is written within JOB_OUTCOME_SLACK_SECONDS; only the prefork pool also enforces
    Celery's hard time limit (threads and solo enforce none)."""
    engine_bound = job_timeout + JOB_GRACE_SECONDS + JOB_OUTCOME_SLACK_SECONDS
    return min(engine_bound, hard_time_limit) if pool == "prefork" else engine_bound


JOB_SILENCE_BOUND_SECONDS: float = job_silence_bound_seconds(
    pool=CELERY_WORKER_POOL, hard_time_limit=CELERY_TASK_TIME_LIMIT, job_timeout=SII_JOB_TIMEOUT_SECONDS
)
# - A RUNNING job whose heartbeat is older than this is failed as `worker_lost` by the reaper. It must
#   exceed the bound above, or a job still running would be failed (and its result arrive late): the
#   default adds a minute to it (and is never below the hard time limit + 60 s). Checked at start,
#   except with DEBUG (development, and the reliability suite, which shrinks every threshold).
AUTORIZA_JOB_REAP_AFTER_SECONDS: int = env.int(
    "AUTORIZA_JOB_REAP_AFTER_SECONDS", default=int(max(JOB_SILENCE_BOUND_SECONDS, CELERY_TASK_TIME_LIMIT)) + 60
)
if not DEBUG and AUTORIZA_JOB_REAP_AFTER_SECONDS <= JOB_SILENCE_BOUND_SECONDS:
    raise ImproperlyConfigured(
        f"AUTORIZA_JOB_REAP_AFTER_SECONDS must exceed the longest a live job can go without reporting: "
        f"with AUTORIZA_WORKER_POOL={CELERY_WORKER_POOL}, "
        + (
            f"the smaller of AUTORIZA_JOB_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT} s) and "
            if CELERY_WORKER_POOL == "prefork"
            else "where Celery enforces no time limit, "
        )
        + f"SII_JOB_TIMEOUT ({SII_JOB_TIMEOUT_SECONDS:g} s) + the engine's grace ({JOB_GRACE_SECONDS:g} s) "
        f"+ {JOB_OUTCOME_SLACK_SECONDS:g} s to record the outcome = {JOB_SILENCE_BOUND_SECONDS:g} s. It is {AUTORIZA_JOB_REAP_AFTER_SECONDS} s, so the reaper could fail "
        f"a job that is still running. Set it above {JOB_SILENCE_BOUND_SECONDS:g} (e.g. "
        f"{int(JOB_SILENCE_BOUND_SECONDS) + 60}) or lower SII_JOB_TIMEOUT."
    )
# - A QUEUED job whose message was sent longer ago than this is sent again by the dispatcher (the
#   broker lost it: Redis crash without persistence, a worker killed with the message in hand).
AUTORIZA_JOB_LOST_AFTER_SECONDS: int = env.int("AUTORIZA_JOB_LOST_AFTER_SECONDS", default=600)
# - Every automatic retry delay (the exponential backoff and the minimum the SII demands, e.g. one
#   hour after throttling) is multiplied by this. 1.0 in production; tests shrink time, not policy.
AUTORIZA_JOB_RETRY_DELAY_SCALE: float = env.float("AUTORIZA_JOB_RETRY_DELAY_SCALE", default=1.0)
AUTORIZA_BASE_URL: str = env.str("AUTORIZA_BASE_URL", default="http://127.0.0.1:8000")

# --- Metrics (portal.metrics) -----------------------------------------------------------------
# /metrics exists only when a token is set (404 otherwise) and answers only `Authorization: Bearer
# <token>` from the TCP peer addresses listed here (CIDR; loopback by default). The token is a
# secret: it never appears in a URL, a log or a label.
AUTORIZA_METRICS_TOKEN: str = env.str("AUTORIZA_METRICS_TOKEN", default="")
AUTORIZA_METRICS_ALLOWED_NETS: list[str] = env.list("AUTORIZA_METRICS_ALLOWED_NETS", default=["127.0.0.1/32", "::1/128"])


def _check_networks(values: list[str]) -> None:
    for value in values:
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            # A typo would silently shut the scraper out: fail at start instead.
            raise ImproperlyConfigured(f"AUTORIZA_METRICS_ALLOWED_NETS: {value!r} is not a CIDR network.") from None


_check_networks(AUTORIZA_METRICS_ALLOWED_NETS)

# Fair scheduling (services/jobs/dispatch.py, docs/architecture.md): background jobs sent to the broker
# and not finished yet, at most (tenants take turns for these places). About the number of browser
# slots of all workers: fewer leaves slots idle, more lets one tenant's backlog sit in the broker
# ahead of another tenant's jobs (never ahead of live jobs: those have a queue served first).
AUTORIZA_BACKGROUND_IN_FLIGHT: int = env.int("AUTORIZA_BACKGROUND_IN_FLIGHT", default=4)
# Cluster-wide SII limits (services.jobs.leases): concurrent SII sessions per SII host and per
# certificate holder (the SII locks a taxpayer out for an hour after too many sessions). Held as
# leases in Redis when REDIS_URL is set, else in the database (one machine); a lease is renewed every
# third of its TTL while its job runs, so a dead worker's lease is free at most TTL seconds after it died.
AUTORIZA_SII_MAX_SESSIONS_PER_HOST: int = env.int("AUTORIZA_SII_MAX_SESSIONS_PER_HOST", default=8)
AUTORIZA_SII_MAX_SESSIONS_PER_RUT: int = env.int("AUTORIZA_SII_MAX_SESSIONS_PER_RUT", default=2)
AUTORIZA_SII_LEASE_TTL_SECONDS: float = env.float("AUTORIZA_SII_LEASE_TTL_SECONDS", default=60.0)
# A job that finds its limits full goes back to the queue for about this long (no retry is spent).
AUTORIZA_SII_LEASE_WAIT_SECONDS: float = env.float("AUTORIZA_SII_LEASE_WAIT_SECONDS", default=2.0)
for _name in ("AUTORIZA_SII_MAX_SESSIONS_PER_HOST", "AUTORIZA_SII_MAX_SESSIONS_PER_RUT", "AUTORIZA_BACKGROUND_IN_FLIGHT"):
    if vars()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")
if AUTORIZA_SII_LEASE_TTL_SECONDS < 3:
    raise ImproperlyConfigured("AUTORIZA_SII_LEASE_TTL_SECONDS must be at least 3 (leases are renewed every third of it).")

# Access checks with the firm key (services.access_checks, docs/architecture.md). One run is one SII
# session of one representative reading at most this many companies (the login is shared by all of
# them; at least 20 so a firm's checks need few logins); a pause between companies keeps the SII load
# of a long run low. The sessions of checks count against AUTORIZA_SII_MAX_SESSIONS_PER_RUT like jobs.
AUTORIZA_ACCESS_CHECK_MAX_COMPANIES: int = env.int("AUTORIZA_ACCESS_CHECK_MAX_COMPANIES", default=50)
AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS: float = env.float("AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS", default=1.0)
# A session that ended early (expired, SII errors) is opened again for the companies not read yet, at
# most this many times per run, after AUTORIZA_ACCESS_CHECK_SESSION_RETRY_SECONDS.
AUTORIZA_ACCESS_CHECK_SESSION_RETRIES: int = env.int("AUTORIZA_ACCESS_CHECK_SESSION_RETRIES", default=2)
AUTORIZA_ACCESS_CHECK_SESSION_RETRY_SECONDS: float = env.float("AUTORIZA_ACCESS_CHECK_SESSION_RETRY_SECONDS", default=5.0)
# A RUNNING run whose heartbeat is older than this lost its worker: the reaper queues it again (once)
# or finishes it with every company not read marked as such.
# A run whose RUT has no free session place waits for one in its slot (the access-check queue has slots
# of its own) at most this long, then goes back to the queue behind the others.
AUTORIZA_ACCESS_CHECK_LEASE_WAIT_SECONDS: float = env.float("AUTORIZA_ACCESS_CHECK_LEASE_WAIT_SECONDS", default=120.0)
AUTORIZA_ACCESS_CHECK_REAP_AFTER_SECONDS: int = env.int("AUTORIZA_ACCESS_CHECK_REAP_AFTER_SECONDS", default=900)
# Celery time limits of one run (threads pools ignore them; the bot's own budget then applies).
AUTORIZA_ACCESS_CHECK_SOFT_TIME_LIMIT: int = env.int("AUTORIZA_ACCESS_CHECK_SOFT_TIME_LIMIT", default=1500)
AUTORIZA_ACCESS_CHECK_TIME_LIMIT: int = env.int("AUTORIZA_ACCESS_CHECK_TIME_LIMIT", default=1800)
if AUTORIZA_ACCESS_CHECK_MAX_COMPANIES < 1:
    raise ImproperlyConfigured("AUTORIZA_ACCESS_CHECK_MAX_COMPANIES must be at least 1.")
if AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS < 0 or AUTORIZA_ACCESS_CHECK_SESSION_RETRIES < 0:
    raise ImproperlyConfigured("AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS and _SESSION_RETRIES must not be negative.")

# --- Email ------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="Autoriza <no-responder@autoriza.cl>")

# --- Logging ---------------------------------------------------------------------------------
# Lines to stderr: plain text, or one JSON object per line with LOG_FORMAT=json (portal.logging: a
# fixed set of fields, never what a caller passes in `extra`). A worker's lines carry the job id and the
# firm's slug while it runs a job. Nothing in the code logs certificate or key material; tests scan
# the logs of a full run to prove it.
LOG_FORMAT: str = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'text' or 'json'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"()": "portal.logging.TextFormatter"},
        "json": {"()": "portal.logging.JsonFormatter"},
    },
    "filters": {"job_context": {"()": "portal.logging.JobContextFilter"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["job_context"]},
    },
    "root": {"handlers": ["stderr"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Periodic work (run by `celery beat`, or `celery worker -B` in the embedded demo).
# The two job intervals are settings so the reliability suite can run the real scheduler fast.
CELERY_BEAT_SCHEDULE = {
    "dispatch-due-jobs": {
        "task": "onboarding.tasks.enrollment_jobs_dispatch",
        "schedule": env.float("AUTORIZA_DISPATCH_EVERY_SECONDS", default=30.0),
    },
    "reap-lost-jobs": {
        "task": "onboarding.tasks.enrollment_jobs_reap",
        "schedule": env.float("AUTORIZA_REAP_EVERY_SECONDS", default=60.0),
    },
    "purge-expired-certificates": {"task": "onboarding.tasks.certificates_purge_expired", "schedule": 3600.0},
    # Each warning goes out once per key (FirmKey.expiry_warned_days), so a daily run is enough.
    "warn-expiring-firm-keys": {"task": "onboarding.tasks.firm_keys_expiry_warn", "schedule": 86400.0},
    # Creates the access checks that are due per tenant, sends due runs, reaps lost ones, e-mails new problems.
    "schedule-access-checks": {
        "task": "onboarding.tasks.access_checks_schedule",
        "schedule": env.float("AUTORIZA_ACCESS_CHECK_TICK_SECONDS", default=300.0),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Cache ------------------------------------------------------------------------------------
# Shared by every web process (login throttling counts across gunicorn workers): Redis when
# configured, else files under var/. onboarding.cache.RedisCache is Django's backend reusing its
# redis clients (Django builds one per operation: half the CPU of a cache.get).
CACHES = {
    "default": (
        {"BACKEND": "onboarding.cache.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "autoriza"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}
    )
}
# Sessions stay in the database (Django's table and format; switching engines logs nobody out), read
# without building an ORM query per request; with Redis they are read from the cache first
# (cached_db). With the file cache, cached_db was no faster (onboarding/sessions/).
SESSION_ENGINE = "onboarding.sessions.cached_db" if REDIS_URL else "onboarding.sessions.db"
# Login brute-force protection: this many failures per account or per client address within the
# window lock further attempts for the rest of the window.
AUTORIZA_LOGIN_MAX_FAILURES: int = env.int("AUTORIZA_LOGIN_MAX_FAILURES", default=5)
AUTORIZA_LOGIN_WINDOW_SECONDS: int = env.int("AUTORIZA_LOGIN_WINDOW_SECONDS", default=900)
# Password reset requests: this many per client address within its window (what stops a flood), and
# per e-mail only a few within a short window (a flood spread over many addresses still cannot fill
# an inbox, and cannot hold the owner's own reset back for longer). A refused request is told so.
AUTORIZA_RESET_MAX_PER_ADDRESS: int = env.int("AUTORIZA_RESET_MAX_PER_ADDRESS", default=5)
AUTORIZA_RESET_ADDRESS_WINDOW_SECONDS: int = env.int("AUTORIZA_RESET_ADDRESS_WINDOW_SECONDS", default=900)
AUTORIZA_RESET_MAX_PER_EMAIL: int = env.int("AUTORIZA_RESET_MAX_PER_EMAIL", default=3)
AUTORIZA_RESET_EMAIL_WINDOW_SECONDS: int = env.int("AUTORIZA_RESET_EMAIL_WINDOW_SECONDS", default=300)
