"""Session engines: Django's own, made cheaper to read on every request (see each module).

- `onboarding.sessions.db`: database sessions, loaded with one precompiled statement (no ORM query
  built per request). Used with the embedded default (file cache).
- `onboarding.sessions.cached_db`: Django's `cached_db` over the same store: read from the cache
  (Redis), written through to the database, so a session survives a cache flush.
"""
