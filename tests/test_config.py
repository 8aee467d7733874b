"""ssechat.config: settings from the environment, overridden by flags."""

from __future__ import annotations

import pytest

from ssechat.config import Settings


def test_defaults_work_offline() -> None:
    settings = Settings.from_env({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000


def test_env_then_overrides() -> None:
    settings = Settings.from_env({"SSECHAT_PORT": "9001", "SSECHAT_HOST": "0.0.0.0"}, port=9002)
    assert settings.host == "0.0.0.0"
    assert settings.port == 9002


def test_none_overrides_are_ignored() -> None:
    assert Settings.from_env({"SSECHAT_PORT": "9001"}, port=None).port == 9001


def test_invalid_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="SSECHAT_HEARTBEAT='often' is not a valid float"):
        Settings.from_env({"SSECHAT_HEARTBEAT": "often"})
