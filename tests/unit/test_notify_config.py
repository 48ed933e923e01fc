"""ETL_NOTIFY_* parsing: defaults, every knob, and the errors that stop a node's start."""

from __future__ import annotations

import pytest

from etl.exceptions import ConfigError
from etl.notify.config import KINDS, NotifyConfig


def test_nothing_configured_is_disabled() -> None:
    config = NotifyConfig.from_env({})
    assert not config.enabled
    assert config.email is None
    assert config.webhook is None
    assert config.on == frozenset(KINDS)


def test_every_knob() -> None:
    config = NotifyConfig.from_env(
        {
            "ETL_NOTIFY_ON": "run_failed, Failing",
            "ETL_NOTIFY_FAILING_AFTER": "5",
            "ETL_NOTIFY_EMAIL_TO": "a@example.com, Ops <ops@example.org>",
            "ETL_NOTIFY_EMAIL_FROM": "etl@example.com",
            "ETL_NOTIFY_SMTP_HOST": "smtp.example.com",
            "ETL_NOTIFY_SMTP_USERNAME": "me",
            "ETL_NOTIFY_SMTP_PASSWORD": "app password",
            "ETL_NOTIFY_SMTP_STARTTLS": "on",
            "ETL_NOTIFY_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/sekrit",
            "ETL_NOTIFY_RATE_PER_MINUTE": "30",
            "ETL_NOTIFY_BURST": "4",
            "ETL_NOTIFY_QUEUE_SIZE": "50",
            "ETL_NOTIFY_ATTEMPTS": "2",
            "ETL_NOTIFY_BACKOFF_SECONDS": "0.5",
            "ETL_NOTIFY_TIMEOUT": "3",
            "ETL_NOTIFY_DRAIN_SECONDS": "1",
        }
    )
    assert config.enabled
    assert config.on == {"run_failed", "failing"}
    assert config.failing_after == 5
    assert config.email is not None
    assert config.email.to == ("a@example.com", "Ops <ops@example.org>")
    assert (config.email.host, config.email.port) == ("smtp.example.com", 587)  # STARTTLS port
    assert (config.email.username, config.email.password) == ("me", "app password")
    assert config.email.starttls is True
    assert config.email.tls is False
    assert config.webhook is not None
    assert (config.rate_per_minute, config.burst, config.queue_size) == (30, 4, 50)
    assert (config.attempts, config.backoff_seconds) == (2, 0.5)
    assert (config.timeout_seconds, config.drain_seconds) == (3, 1)


def test_defaults_of_a_mail_only_setup() -> None:
    config = NotifyConfig.from_env({"ETL_NOTIFY_EMAIL_TO": "ops@example.com"})
    assert config.email is not None
    assert (config.email.host, config.email.port) == ("localhost", 25)
    assert config.email.starttls is None  # upgrade when offered
    assert config.email.sender.startswith("shardetl@")
    tls = NotifyConfig.from_env({"ETL_NOTIFY_EMAIL_TO": "o@x.org", "ETL_NOTIFY_SMTP_TLS": "1"})
    assert tls.email is not None
    assert (tls.email.port, tls.email.tls) == (465, True)


def test_secrets_stay_out_of_reprs_and_descriptions() -> None:
    config = NotifyConfig.from_env(
        {
            "ETL_NOTIFY_EMAIL_TO": "ops@example.com",
            "ETL_NOTIFY_SMTP_USERNAME": "me",
            "ETL_NOTIFY_SMTP_PASSWORD": "hunter2",
            "ETL_NOTIFY_WEBHOOK_URL": "https://discord.com/api/webhooks/123/tok3n",
        }
    )
    assert "hunter2" not in repr(config)
    assert "tok3n" not in repr(config)
    assert config.webhook is not None
    assert config.webhook.describe() == "webhook https://discord.com/…"


def test_none_switches_every_event_off() -> None:
    config = NotifyConfig.from_env({"ETL_NOTIFY_ON": "none", "ETL_NOTIFY_EMAIL_TO": "o@x.org"})
    assert config.on == frozenset()
    assert not config.enabled


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ETL_NOTIFY_ON": "run_failed,bogus"}, "unknown event bogus"),
        ({"ETL_NOTIFY_FAILING_AFTER": "0"}, "at least 1"),
        ({"ETL_NOTIFY_FAILING_AFTER": "three"}, "must be an integer"),
        ({"ETL_NOTIFY_RATE_PER_MINUTE": "-1"}, "at least 0"),
        ({"ETL_NOTIFY_BACKOFF_SECONDS": "nan"}, "at least 0"),
        ({"ETL_NOTIFY_TIMEOUT": "soon"}, "must be a number"),
        ({"ETL_NOTIFY_SMTP_HOST": "smtp.example.com"}, "ETL_NOTIFY_EMAIL_TO is not"),
        ({"ETL_NOTIFY_EMAIL_TO": "not-an-address"}, "not an email address"),
        ({"ETL_NOTIFY_EMAIL_TO": "o@x.org", "ETL_NOTIFY_EMAIL_FROM": "me"}, "EMAIL_FROM"),
        ({"ETL_NOTIFY_EMAIL_TO": "o@x.org", "ETL_NOTIFY_SMTP_PORT": "70000"}, "65535"),
        ({"ETL_NOTIFY_EMAIL_TO": "o@x.org", "ETL_NOTIFY_SMTP_USERNAME": "me"}, "go together"),
        (
            {
                "ETL_NOTIFY_EMAIL_TO": "o@x.org",
                "ETL_NOTIFY_SMTP_TLS": "on",
                "ETL_NOTIFY_SMTP_STARTTLS": "on",
            },
            "exclude each other",
        ),
        ({"ETL_NOTIFY_EMAIL_TO": "o@x.org", "ETL_NOTIFY_SMTP_STARTTLS": "maybe"}, "on, off"),
    ],
)
def test_bad_values_raise_config_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NotifyConfig.from_env(env)


def test_a_bad_webhook_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        NotifyConfig.from_env({"ETL_NOTIFY_WEBHOOK_URL": "hooks.slack.com/services/sekrit"})
    assert "sekrit" not in str(caught.value)
