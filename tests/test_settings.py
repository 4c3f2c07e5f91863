"""Settings from the environment: defaults, parsing, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import Settings, SettingsError


def test_defaults_need_nothing_but_a_key(tmp_path: Path) -> None:
    settings = Settings.from_env({"TICKMARK_DATA_DIR": str(tmp_path)})
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.origins == frozenset({"http://127.0.0.1:8000"})
    assert settings.secure_cookies is False
    assert settings.ws_max_frame_bytes == 65536
    assert settings.webhook_allow_private is False
    # A key is made once and kept in the data folder.
    assert len(settings.secret_key) >= 40
    again = Settings.from_env({"TICKMARK_DATA_DIR": str(tmp_path)})
    assert again.secret_key == settings.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_values_are_read_and_normalized() -> None:
    settings = Settings.from_env(
        {
            "SECRET_KEY": "k",
            "PUBLIC_URL": "https://tickmark.example/",
            "ALLOWED_ORIGINS": " https://app.example.com/path , https://m.example.com",
            "WS_COMPRESSION": "on",
            "WEBHOOK_ALLOW_PRIVATE": "0",
            "PORT": "9000",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.public_url == "https://tickmark.example"
    assert settings.secure_cookies is True
    assert settings.origins == frozenset(
        {
            "https://tickmark.example",
            "https://app.example.com",
            "https://m.example.com",
        }
    )
    assert settings.ws_compression is True
    assert settings.webhook_allow_private is False
    assert settings.port == 9000
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PUBLIC_URL", "ftp://x", "PUBLIC_URL must be an http(s) URL"),
        ("PORT", "eighty", "PORT must be an integer"),
        ("DB_POOL_SIZE", "1", "DB_POOL_SIZE must be at least 2"),
        ("WS_MAX_FRAME_BYTES", "1024", "WS_MAX_FRAME_BYTES must be at least 65536"),
        ("WS_PING_INTERVAL_SECS", "0", "WS_PING_INTERVAL_SECS must be positive"),
        ("WS_COMPRESSION", "maybe", "WS_COMPRESSION must be true or false"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be text or json"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(
        SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        Settings.from_env({"SECRET_KEY": "k", name: value})


def test_the_public_url_follows_host_and_port_unless_given() -> None:
    assert (
        Settings.from_env({"SECRET_KEY": "k", "PORT": "8731"}).public_url
        == "http://127.0.0.1:8731"
    )
    assert (
        Settings.from_env(
            {"SECRET_KEY": "k", "HOST": "0.0.0.0", "PORT": "9"}
        ).public_url
        == "http://127.0.0.1:9"
    )
    given = Settings.from_env(
        {"SECRET_KEY": "k", "PORT": "9", "PUBLIC_URL": "https://t.example"}
    )
    assert given.public_url == "https://t.example"
