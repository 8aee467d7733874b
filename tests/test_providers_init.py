"""ssechat.providers re-exports its public names through a tested ``__all__``."""

from __future__ import annotations

import ssechat.fake_upstream
import ssechat.providers
from ssechat.providers import base, demo, openai


def test_all_names_resolve_to_the_defining_modules() -> None:
    assert sorted(ssechat.providers.__all__) == sorted(set(ssechat.providers.__all__))
    for name in ssechat.providers.__all__:
        value = getattr(ssechat.providers, name)
        home = next(m for m in (base, demo, openai) if name in m.__all__)
        assert value is getattr(home, name), name


def test_every_public_name_of_the_implementations_is_exported() -> None:
    exported = set(ssechat.providers.__all__)
    assert set(base.__all__) <= exported
    assert set(demo.__all__) <= exported
    assert set(openai.__all__) - {"parse_retry_after"} <= exported


def test_fake_upstream_all_resolves() -> None:
    for name in ssechat.fake_upstream.__all__:
        assert getattr(ssechat.fake_upstream, name) is not None
