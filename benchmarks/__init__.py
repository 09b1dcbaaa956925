"""Autoriza's benchmarks: `python -m benchmarks` (or `make bench`). Not tests: they measure.

Four parts, each run in its own subprocess so that each gets a clean Django configuration:

- ``bot``: the plain-HTTP lower bound (``sii_sandbox.probe``: httpx with the client certificate,
  forms posted directly) against the Playwright bot (``sii_bot.BrowserEngine``, Chromium kept warm)
  on the same page sequence, at a sandbox latency of 0 and 200 ms per page, screenshots on and off.
- ``throughput``: N enrollments through the real path (job rows, the broker, real
  ``celery worker`` processes with 1, 2 and 4 slots, Chromium, the sandbox): enrollments per
  minute, job times, failures and the peak memory of a worker tree (Chromium included) per slot.
- ``portal``: the client's status partial (200 and 304 paths) and the staff dashboard (10,000
  client companies) under concurrent clients against gunicorn, with wrk or a Python fallback.
- ``fairness``: live authorizations alone, then under another firm's N background jobs with a
  worker killed mid-run (two workers, as two machines with Redis): live waits, SII sessions per
  certificate holder against the cap, jobs lost and SII saves duplicated (``benchmarks/fairness.py``).

Everything runs against throwaway state (a temporary AUTORIZA_VAR_DIR, a dedicated database, a
sandbox in its own process with in-memory state) and is removed afterwards. See docs/performance.md.
"""
