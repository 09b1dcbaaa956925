"""Smoke test of the benchmark harness (it measures nothing): `python -m benchmarks` with N=2 and
tiny loads runs every part against throwaway state and prints its table and summary line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sandbox, pytest.mark.browser, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]


def _chromium_available() -> bool:
    from sii_bot.settings import default_chromium_path

    if default_chromium_path():
        return True
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright"))
    return any(cache.glob("chromium*-*"))


def test_harness_runs_every_part_and_prints_a_table(tmp_path: Path) -> None:
    if not _chromium_available():
        pytest.skip("no Chromium for Playwright")
    pytest.importorskip("playwright.sync_api")
    env = {**os.environ, "BENCH_DB_PREFIX": f"autoriza_bench_smoke_{os.getpid()}_"}
    env.pop("CRYPTOGRAPHY_OPENSSL_NO_LEGACY", None)
    result_path = tmp_path / "bench.json"
    completed = subprocess.run(
        # The fairness part (minutes, by design) has its own test: tests/reliability/test_fairness.py.
        [sys.executable, "-m", "benchmarks", "--only", "bot,throughput,portal", "--quick", "--n", "2", "--variants", "1", "--bot-runs", "1",
         "--latencies", "0", "--screenshots", "on", "--companies", "60", "--owners", "4", "--dashboard-k", "2",
         "--portal-k", "4", "--status-rate", "50", "--duration", "1", "--json", str(result_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=540, check=False,
    )
    out = completed.stdout
    assert completed.returncode == 0, out[-3000:] + completed.stderr[-5000:]
    assert "| part" in out and "| bot " in out and "| throughput " in out and "| portal " in out, out
    assert out.strip().splitlines()[-1].startswith("SUMMARY: "), out
    scenarios = json.loads(result_path.read_text())["portal"]["scenarios"]
    assert set(scenarios) == {"status_200", "status_304", "status_200_at_rate", "status_304_at_rate", "dashboard"}
    assert scenarios["status_304_at_rate"]["offered_rps"] == 50 and scenarios["status_304_at_rate"]["requests"] >= 45
    assert scenarios["status_304_at_rate"]["statuses"] == {"304": scenarios["status_304_at_rate"]["requests"]}
    assert "open loop at 50/s" in out
