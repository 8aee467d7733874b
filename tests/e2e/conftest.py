"""Fixtures of the end-to-end tests: one server (with an admin) and one Chromium for the
session, fresh signed-in browser contexts for each test (see harness.py), and servers of a
test's own: a fresh one with no account yet (``fresh_server``), or any settings
(``start_server``).

Needs the ``playwright`` package (the tests are skipped without it), Chromium at
``/usr/bin/chromium`` (or ``SSECHAT_CHROMIUM``), and the built UI in ``web/dist``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import harness
from tests.e2e.harness import ADMIN, Account, Browser, Server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark these tests ``real_server`` and run them after all others.

    While a browser is open, Playwright's sync API keeps an asyncio loop running in the main
    thread, and any test that starts its own loop (anyio, asyncio.run) would fail meanwhile.
    """
    here = Path(__file__).parent
    ours = [item for item in items if item.path.is_relative_to(here)]
    for item in ours:
        item.add_marker(pytest.mark.real_server)
    chosen = set(ours)
    items[:] = [item for item in items if item not in chosen] + ours


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with harness.fake_upstream(tmp_path_factory.mktemp("upstream")) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def server(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    try:
        with harness.ssechat_serve(tmp_path_factory.mktemp("server"), upstream) as running:
            yield running
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def start_server(
    upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Server]]:
    """Start servers of the test's own, each with its own database, all stopped at its end:
    ``start_server(SSECHAT_SIGNUP="approval")``, ``start_server(admin=None)`` (no account)."""
    with contextlib.ExitStack() as stack:

        def start(admin: Account | None = ADMIN, **env: str) -> Server:
            workdir = tmp_path_factory.mktemp("own-server")
            try:
                return stack.enter_context(
                    harness.ssechat_serve(workdir, upstream, admin=admin, env=env)
                )
            except RuntimeError as exc:
                pytest.fail(str(exc))

        yield start


@pytest.fixture
def fresh_server(start_server: Callable[..., Server]) -> Server:
    """A server with no account yet: it printed its one-time setup link (``setup_link()``)."""
    return start_server(admin=None)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright")
    if not Path(harness.CHROMIUM).exists() and shutil.which(harness.CHROMIUM) is None:
        pytest.fail(f"no Chromium at {harness.CHROMIUM}: apt-get install chromium")
    with sync_api.sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    chromium = playwright.chromium.launch(
        executable_path=harness.CHROMIUM, args=harness.CHROMIUM_ARGS
    )
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def ui(browser: Any, server: Server) -> Iterator[Browser]:
    """Fresh browser contexts for one test; afterwards, asserts that nothing escaped."""
    helper = Browser(browser, server)
    try:
        yield helper
    finally:
        helper.close()
    assert helper.watch.foreign_requests == [], "the page contacted another host"
    assert helper.watch.dialogs == [], "a dialog was opened"
    assert helper.watch.page_errors == [], "the page threw"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    harness.ARTIFACTS.mkdir(exist_ok=True)
    return harness.ARTIFACTS
