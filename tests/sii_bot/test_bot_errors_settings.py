"""Tests for sii_bot.errors and sii_bot.settings."""

from __future__ import annotations

import pytest

from sii_bot import errors
from sii_bot.errors import FAILURE_CODES, EnrollmentFailure, failure_from_code
from sii_bot.settings import SiiSettings


def test_failure_registry_is_complete_and_consistent() -> None:
    required = {
        "certificate_rejected", "holder_not_administrator", "company_not_authorized", "option_not_allowed",
        "too_many_sessions", "login_throttled", "sii_unavailable", "waf_rejected", "session_expired",
        "unexpected_page", "confirmation_mismatch", "user_rut_invalid", "step_timeout", "browser_unavailable",
    }
    assert required <= set(FAILURE_CODES)
    messages = set()
    for code, cls in FAILURE_CODES.items():
        assert cls.code == code
        assert issubclass(cls, EnrollmentFailure)
        assert failure_from_code(code) is cls
        assert cls.user_message and cls.user_message not in messages
        messages.add(cls.user_message)
        if cls.retryable:
            assert cls.retry_after_seconds and cls.retry_after_seconds > 0
        else:
            assert cls.retry_after_seconds is None
    assert failure_from_code("does_not_exist") is EnrollmentFailure


def test_throttling_failures_retry_only_much_later() -> None:
    for cls in (errors.TooManySessions, errors.LoginThrottled, errors.WafRejected):
        assert cls.retryable and cls.retry_after_seconds is not None and cls.retry_after_seconds >= 1800
    for cls in (errors.UnexpectedPage, errors.ConfirmationMismatch, errors.HolderNotAdministrator):
        assert not cls.retryable


def test_failure_instance_attributes() -> None:
    failure = errors.UnexpectedPage("no form", page_html="<html>", screenshot=b"png", step="company")
    assert failure.detail == "no form" and failure.step == "company"
    assert "png" not in repr(failure) and "<html>" not in repr(failure)
    data = failure.to_dict()
    assert data["code"] == "unexpected_page" and "page_html" not in data
    with pytest.raises(EnrollmentFailure):
        raise failure


def test_settings_defaults() -> None:
    s = SiiSettings.from_env({})
    assert s.enroll_url == "https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"
    assert s.cert_origins == ("https://herculesr.sii.cl",)
    assert s.ca_bundle is None
    assert s.logout_url == "https://zeusr.sii.cl/cgi_AUT2000/autTermino.cgi"
    assert s.step_timeout_seconds == 30 and s.job_timeout_seconds == 240
    assert s.headless and s.screenshots and not s.screenshot_every_step
    assert s.is_real_sii


@pytest.mark.parametrize(("value", "shots", "every"), [("1", True, False), ("0", False, False), ("all", True, True)])
def test_settings_screenshot_modes(value: str, shots: bool, every: bool) -> None:
    s = SiiSettings.from_env({"SII_SCREENSHOTS": value})
    assert (s.screenshots, s.screenshot_every_step) == (shots, every)


def test_settings_from_env(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    s = SiiSettings.from_env({
        "SII_ENROLL_URL": "https://127.0.0.1:9443/cvc_cgi/dte/eu_enrola_usuarios",
        "SII_CERT_ORIGINS": "https://127.0.0.1:9444/, https://localhost:443",
        "SII_CA_BUNDLE": str(bundle),
        "SII_LOGOUT_URL": "https://127.0.0.1:9445/cgi_AUT2000/autTermino.cgi",
        "SII_STEP_TIMEOUT": "5",
        "SII_JOB_TIMEOUT": "60.5",
        "SII_CHROMIUM_PATH": "/opt/chrome",
        "SII_SCREENSHOTS": "false",
        "SII_HEADLESS": "0",
    })
    assert s.cert_origins == ("https://127.0.0.1:9444", "https://localhost")
    assert s.ca_bundle == str(bundle)
    assert s.step_timeout_seconds == 5 and s.job_timeout_seconds == 60.5
    assert s.chromium_path == "/opt/chrome"
    assert not s.screenshots and not s.headless
    assert not s.is_real_sii


@pytest.mark.parametrize(
    "env",
    [{"SII_STEP_TIMEOUT": "abc"}, {"SII_JOB_TIMEOUT": "-1"}, {"SII_SCREENSHOTS": "maybe"},
     {"SII_ENROLL_URL": "ftp://x/y"}, {"SII_CERT_ORIGINS": "herculesr.sii.cl"}],
)
def test_settings_invalid_env(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        SiiSettings.from_env(env)


def test_environment_presets() -> None:
    prod = SiiSettings.for_environment("production")
    cert = SiiSettings.for_environment("certification", step_timeout_seconds=10)
    assert prod.enroll_url == "https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"
    assert cert.enroll_url == "https://maullin.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"
    assert cert.cert_origins == prod.cert_origins == ("https://herculesr.sii.cl",)
    assert cert.logout_url == prod.logout_url
    assert cert.step_timeout_seconds == 10
    with pytest.raises(ValueError):
        SiiSettings.for_environment("staging")  # type: ignore[arg-type]
