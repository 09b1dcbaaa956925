"""Cluster-wide SII session limits: leases on a job's SII host and on its certificate holder's RUT.

The SII limits concurrent sessions (and locks a taxpayer out for an hour after too many), so every
worker of every machine shares two caps: AUTORIZA_SII_MAX_SESSIONS_PER_HOST sessions per SII host
(the host of the tenant's enrolment URL) and AUTORIZA_SII_MAX_SESSIONS_PER_RUT per certificate holder
(`Certificate.holder_rut`). A worker takes one place of each right after it claims a job and before
the bot logs in (`sii_leases_acquire`), keeps them renewed while the bot runs (`sii_leases_kept`, a
thread renewing every third of the TTL) and gives them back when the bot is done (`sii_leases_release`,
idempotent). A job that gets no places is not failed: it goes back to the queue for a moment
(`lifecycle.enrollment_job_wait`).

Nothing stays held after a kill -9: a place is a lease with an expiry of AUTORIZA_SII_LEASE_TTL_SECONDS
(60 s by default) that only its living holder renews, so a dead worker's places are free at most a TTL
after its last renewal.

Two backends, the same behaviour:
- Redis (when REDIS_URL is set; every machine): a sorted set per limit, members the holders' tokens
  scored by their expiry in Redis' own clock; acquiring all of a job's places, renewing them and
  releasing them are each one Lua script, so they are atomic across all workers.
- the database (the embedded default, one machine): `SiiLease` rows, one per place (key, slot),
  taken by compare-and-set (a free or expired place, or a new row guarded by the unique constraint),
  every place of a job in one transaction.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from onboarding.models import EnrollmentJob, JobKind, SiiLease
from onboarding.services.jobs.bot import sii_settings_for

logger = logging.getLogger(__name__)

__all__ = [
    "Leases",
    "sii_lease_keys",
    "sii_leases_acquire",
    "sii_leases_acquire_keys",
    "sii_leases_held",
    "sii_leases_kept",
    "sii_leases_release",
    "sii_leases_renew",
]

REDIS_PREFIX = "autoriza:sii-lease:{sii}:"  # one hash tag: every key in one cluster slot, for the scripts


@dataclass(frozen=True)
class Leases:
    """The places one job holds: `keys` ("host:…", "rut:…") and the token that names the holder."""

    token: str
    keys: tuple[str, ...]


def sii_lease_keys(*, job: EnrollmentJob) -> list[tuple[str, int]]:
    """The limits a job's SII session counts against, as (key, cap): its SII host, and its
    certificate holder's RUT when it has a certificate (or the firm key's holder for a job run with it)."""
    host = urlsplit(sii_settings_for(job.tenant).enroll_url).hostname or "sii"
    keys = [(f"host:{host}", settings.AUTORIZA_SII_MAX_SESSIONS_PER_HOST)]
    if job.certificate is not None and job.certificate.holder_rut:
        keys.append((f"rut:{job.certificate.holder_rut}", settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT))
    if job.firm_key is not None and job.firm_key.holder_rut:
        # The firm's own key: its holder's sessions count like anyone's (the same RUT as the firm's checks).
        keys.append((f"rut:{job.firm_key.holder_rut}", settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT))
        if job.kind == JobKind.REPLACE and job.user_rut != job.firm_key.holder_rut:
            # The new representative's own key removes the old one, in a session of its own.
            keys.append((f"rut:{job.user_rut}", settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT))
    return keys


def _ttl() -> float:
    return float(settings.AUTORIZA_SII_LEASE_TTL_SECONDS)


def sii_leases_acquire(*, job: EnrollmentJob) -> Leases | None:
    """Take one place of each of the job's limits, all or none; None when one of them is full."""
    keys = sii_lease_keys(job=job)
    token = f"{job.pk}:{uuid.uuid4().hex[:12]}"
    backend = _redis_acquire if settings.REDIS_URL else _db_acquire
    if not backend(keys, token):
        return None
    return Leases(token=token, keys=tuple(key for key, _ in keys))


def sii_leases_acquire_keys(*, keys: list[tuple[str, int]], holder: str) -> Leases | None:
    """Take one place of each of `keys` ((key, cap) pairs, as `sii_lease_keys` gives), all or none,
    for a holder that is not an enrollment job (an access check run: `holder` is its id); None when
    one of them is full. Same backends, renewal and release as a job's places."""
    token = f"{holder}:{uuid.uuid4().hex[:12]}"
    backend = _redis_acquire if settings.REDIS_URL else _db_acquire
    if not backend(keys, token):
        return None
    return Leases(token=token, keys=tuple(key for key, _ in keys))


def sii_leases_renew(*, leases: Leases) -> bool:
    """Push the expiry of every place back to a full TTL; False if one of them was lost (it expired
    and may be someone else's now: the holder stopped renewing for longer than a TTL)."""
    return (_redis_renew if settings.REDIS_URL else _db_renew)(leases)


def sii_leases_release(*, leases: Leases) -> None:
    """Give every place back; releasing again (or after expiry) does nothing."""
    (_redis_release if settings.REDIS_URL else _db_release)(leases)


def sii_leases_held(key: str) -> int:
    """How many places of `key` ("host:…", "rut:…") are held now (for tests and operators)."""
    if settings.REDIS_URL:
        client = _redis()
        name = REDIS_PREFIX + key
        now_ms = _redis_now_ms(client)
        return int(client.zcount(name, f"({now_ms}", "+inf"))
    return SiiLease.objects.filter(key=key, expires_at__gt=timezone.now()).exclude(token="").count()


@contextmanager
def sii_leases_kept(leases: Leases) -> Iterator[Leases]:
    """Keep the places renewed while the block runs (a thread renewing every third of the TTL), and
    release them when it ends, however it ends."""
    stop = threading.Event()

    def renew_until_stopped() -> None:
        try:
            while not stop.wait(_ttl() / 3):
                try:
                    if not sii_leases_renew(leases=leases):
                        logger.warning("SII leases %s lost before the job ended (no renewal for a TTL)", leases.keys)
                except Exception:  # a renewal failing once must not end the job; the next one retries
                    logger.exception("renewing SII leases %s failed", leases.keys)
        finally:
            if not settings.REDIS_URL:
                connection.close()  # this thread's own database connection

    renewer = threading.Thread(target=renew_until_stopped, name=f"sii-lease-{leases.token}", daemon=True)
    renewer.start()
    try:
        yield leases
    finally:
        stop.set()
        renewer.join(timeout=10)
        sii_leases_release(leases=leases)


# --- Redis ------------------------------------------------------------------------------------------

# KEYS: the limits; ARGV: token, ttl (ms), then each key's cap. Expired holders are dropped first.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if not redis.call('ZSCORE', key, ARGV[1]) and redis.call('ZCARD', key) >= tonumber(ARGV[i + 2]) then
    return 0
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""
# A place expired but not yet dropped was taken by nobody (acquiring drops them first): keeping it is safe.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local held = 1
for i, key in ipairs(KEYS) do
  if redis.call('ZSCORE', key, ARGV[1]) then
    redis.call('ZADD', key, now + ttl, ARGV[1])
    redis.call('PEXPIRE', key, ttl)
  else
    held = 0
  end
end
return held
"""

_client_lock = threading.Lock()
_client: Any = None
_client_url = ""


def _redis() -> Any:
    """This process's Redis client for REDIS_URL (thread-safe, pooled)."""
    global _client, _client_url
    with _client_lock:
        if _client is None or _client_url != settings.REDIS_URL:
            # Loaded on use: the Redis client is needed only when REDIS_URL is set.
            import redis

            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
            _client_url = settings.REDIS_URL
        return _client


def _redis_now_ms(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _redis_acquire(keys: list[tuple[str, int]], token: str) -> bool:
    names = [REDIS_PREFIX + key for key, _ in keys]
    caps = [cap for _, cap in keys]
    return bool(_redis().eval(_ACQUIRE, len(names), *names, token, int(_ttl() * 1000), *caps))


def _redis_renew(leases: Leases) -> bool:
    names = [REDIS_PREFIX + key for key in leases.keys]
    return bool(_redis().eval(_RENEW, len(names), *names, leases.token, int(_ttl() * 1000)))


def _redis_release(leases: Leases) -> None:
    client = _redis()
    pipe = client.pipeline(transaction=True)
    for key in leases.keys:
        pipe.zrem(REDIS_PREFIX + key, leases.token)
    pipe.execute()


# --- The database -----------------------------------------------------------------------------------


class _Full(Exception):
    """A limit had no free place: undo the places taken in the same transaction."""


def _db_take(key: str, cap: int, token: str, now: Any, until: Any) -> bool:
    """Take a free or expired place of `key` below `cap`, or create one; False if all are held."""
    rows = dict(SiiLease.objects.filter(key=key, slot__lt=cap).values_list("slot", "expires_at"))
    for slot in range(cap):
        if slot in rows:
            if rows[slot] > now:
                continue
            # Compare-and-set: still free or expired when written (another worker may have just taken it).
            if SiiLease.objects.filter(key=key, slot=slot).filter(Q(token="") | Q(expires_at__lte=now)).update(
                token=token, expires_at=until
            ):
                return True
            continue
        try:
            with transaction.atomic():
                SiiLease.objects.create(key=key, slot=slot, token=token, expires_at=until)
            return True
        except IntegrityError:
            continue  # another worker created this place first
    return False


def _db_acquire(keys: list[tuple[str, int]], token: str) -> bool:
    now = timezone.now()
    until = now + timedelta(seconds=_ttl())
    try:
        with transaction.atomic():
            for key, cap in keys:
                if not _db_take(key, cap, token, now, until):
                    raise _Full(key)
    except _Full:
        return False
    return True


def _db_renew(leases: Leases) -> bool:
    until = timezone.now() + timedelta(seconds=_ttl())
    return SiiLease.objects.filter(token=leases.token, key__in=leases.keys).update(expires_at=until) == len(leases.keys)


def _db_release(leases: Leases) -> None:
    # An expiry in the past frees the place for `_db_take` at once.
    SiiLease.objects.filter(token=leases.token).update(token="", expires_at=timezone.now() - timedelta(seconds=1))
