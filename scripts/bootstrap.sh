#!/usr/bin/env bash
# Installs what Autoriza needs and is missing, idempotently: uv, the locked dependencies (.venv),
# a Chromium for Playwright, and a local .env with development secrets. Called by `make test` and
# `make demo`; safe to run again (it only does what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

# 1. uv: from PATH, from ~/.local/bin, or installed with pip (user install, then a private venv
#    for Debian's externally-managed Python).
export PATH="$HOME/.local/bin:$PWD/var/tools/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  log "installing uv"
  PY=$(command -v python3.11 || command -v python3)
  if ! "$PY" -m pip install --quiet --user uv 2>/dev/null; then
    mkdir -p var
    "$PY" -m venv var/tools
    var/tools/bin/pip install --quiet uv
  fi
fi

# 2. The locked dependencies, exactly (fails if uv.lock is out of date with pyproject.toml).
uv sync --frozen --quiet

# 3. Chromium for Playwright: Debian's packages where we can install them (Playwright's own download
#    is unreachable on restricted networks), else Playwright's managed build. The bot runs headless on
#    Debian's chromium-headless-shell when it is there (the headless-only build Playwright itself uses:
#    half the CPU and ~200 MB less per browser than the full chromium; docs/performance.md).
has_chromium() {
  [ -n "${SII_CHROMIUM_PATH:-}" ] && [ -x "${SII_CHROMIUM_PATH}" ] && return 0
  command -v chromium >/dev/null 2>&1 && return 0
  ls "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}"/chromium*-*/ >/dev/null 2>&1 && return 0
  return 1
}
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromium-headless-shell >/dev/null 2>&1 || missing+=(chromium-headless-shell)
if [ ${#missing[@]} -gt 0 ] && [ -z "${SII_CHROMIUM_PATH:-}" ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
  log "installing Debian's ${missing[*]} (apt-get)"
  apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; }
  apt_install "${missing[@]}" || (apt-get update -qq && apt_install "${missing[@]}") \
    || log "apt-get could not install ${missing[*]}"
fi
if ! has_chromium; then
  log "installing Playwright's chromium (playwright install chromium)"
  uv run --frozen playwright install chromium || log "WARNING: no Chromium available; browser tests will be skipped"
fi

# 4. A local .env with development secrets (never committed; production sets real ones).
if [ ! -f .env ]; then
  log "writing .env with fresh development secrets"
  uv run --frozen python - <<'PY'
import base64, os, secrets
key = base64.b64encode(os.urandom(32)).decode()
with open(".env", "w") as fh:
    fh.write("# Local development settings written by scripts/bootstrap.sh. Not for production.\n")
    fh.write("DJANGO_DEBUG=1\n")
    fh.write(f"DJANGO_SECRET_KEY={secrets.token_urlsafe(48)}\n")
    fh.write(f"AUTORIZA_MASTER_KEYS=dev1:{key}\n")
os.chmod(".env", 0o600)
PY
fi
mkdir -p var
