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


def test_every_setting_is_documented_in_the_readme() -> None:
    from dataclasses import fields
    from pathlib import Path

    from ssechat.config import ENV_ALIASES, ENV_PREFIX

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for f in fields(Settings):
        variable = ENV_ALIASES.get(f.name, ENV_PREFIX + f.name.upper())
        assert f"`{variable}`" in readme, f"{variable} is not in the README's settings table"


def test_the_key_never_shows_in_repr_or_errors() -> None:
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-very-secret"})
    assert settings.openai_api_key == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings)


def test_openai_base_url_alone_enables_the_upstream() -> None:
    assert not Settings.from_env({}).has_upstream
    assert Settings.from_env({"OPENAI_BASE_URL": "http://localhost:11434/v1"}).has_upstream


@pytest.mark.parametrize(
    "env",
    [{"SSECHAT_ON_DISCONNECT": "explode"}, {"SSECHAT_PORT": "70000"}, {"SSECHAT_RETRY_MS": "0"}],
)
def test_invalid_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"SSECHAT_|port"):
        Settings.from_env(env)


def test_a_reasoning_tag_must_be_a_bare_name() -> None:
    with pytest.raises(ValueError, match="SSECHAT_REASONING_TAGS"):
        Settings.from_env({"SSECHAT_REASONING_TAGS": "think,</x>"})
    given = Settings.from_env({"SSECHAT_REASONING_TAGS": "think, reasoning"})
    assert given.reasoning_tags == "think, reasoning"
