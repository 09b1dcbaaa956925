# Autoriza production image: web (gunicorn), browser worker (Celery + Debian's headless Chromium), scheduler.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    SII_CHROMIUM_PATH=/usr/bin/chromium-headless-shell

# Debian's headless Chromium (the build Playwright uses for headless; half the CPU and ~180 MB less
# per browser than the full one, docs/performance.md) drives the SII pages (no download at build time).
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium-headless-shell fonts-dejavu-core ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir uv \
 && useradd --create-home --uid 10001 autoriza

WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
# Static files are collected at build time; the throwaway secrets only satisfy the start-up checks.
RUN DJANGO_SECRET_KEY=build-only AUTORIZA_MASTER_KEYS=build:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    python manage.py collectstatic --noinput \
 && mkdir -p /app/var && chown autoriza /app/var

USER autoriza
EXPOSE 8000
# gunicorn.conf.py: (2 × cores) + 1 synchronous workers on :8000 (WEB_CONCURRENCY to change), access log on stdout.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "portal.wsgi"]
