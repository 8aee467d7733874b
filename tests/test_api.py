"""ssechat.api in process: conversations, the message tree, runs, the tutorial's /api/chat.

Answers come from the offline demo model at full speed; the expected text is what the demo
provider itself streams for the same context.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ssechat.api.schemas import ConversationDetail, ErrorBody, GenerationAccepted
from ssechat.api.web import CONTENT_SECURITY_POLICY
from ssechat.config import Settings
from ssechat.providers.base import ChatMessage, GenerationParams
from ssechat.providers.demo import DemoProvider

from .api_support import api_client, parse_events, run_stream

pytestmark = pytest.mark.anyio

SSE = {"Accept": "text/event-stream"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=str(tmp_path / "chat.db"),
        demo_tokens_per_second=0,
        web_dir=str(tmp_path / "no-web"),
        heartbeat=60,
        # One implicit user: these tests are about conversations and runs; accounts and access
        # are tests/test_auth_*.py's. httpx's in-process client asks for host "test".
        auth="off",
        allowed_hosts="test",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings) as client:
        yield client


async def demo_answer(messages: list[ChatMessage]) -> str:
    provider = DemoProvider(tokens_per_second=0)
    parts = [d.text async for d in provider.stream(messages, "demo", GenerationParams())]
    return "".join(parts)


async def new_conversation(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/conversations", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def send(client: httpx.AsyncClient, conversation_id: str, **body: Any) -> httpx.Response:
    return await client.post(
        f"/api/conversations/{conversation_id}/messages", json=body, headers=SSE
    )


async def snapshot(client: httpx.AsyncClient) -> Any:
    """Everything the store holds, as the API shows it: to check that bad input changed nothing."""
    listing = (await client.get("/api/conversations", params={"limit": 200})).json()
    return [
        (await client.get(f"/api/conversations/{c['id']}")).json() for c in listing["conversations"]
    ]


# --- health, models ------------------------------------------------------------------------


async def test_health_and_models_offline(client: httpx.AsyncClient) -> None:
    health = (await client.get("/api/health")).json()
    assert health["status"] == "ok"
    assert health["default_model"] == "demo"
    assert health["demo"] is True
    models = (await client.get("/api/models")).json()
    assert models["default"] == "demo"
    assert [m["id"] for m in models["models"]] == ["demo"]


# --- conversations -------------------------------------------------------------------------


async def test_conversation_crud(client: httpx.AsyncClient) -> None:
    created = await new_conversation(client, title="First", system_prompt="Be brief.")
    assert created["title"] == "First"
    assert created["system_prompt"] == "Be brief."
    second = await new_conversation(client)
    listing = (await client.get("/api/conversations")).json()
    assert [c["id"] for c in listing["conversations"]] == [second["id"], created["id"]]

    patched = await client.patch(f"/api/conversations/{created['id']}", json={"title": "Renamed"})
    assert patched.status_code == 200
    assert patched.json()["title"] == "Renamed"
    assert patched.json()["system_prompt"] == "Be brief."

    assert (await client.delete(f"/api/conversations/{created['id']}")).status_code == 204
    gone = await client.get(f"/api/conversations/{created['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


async def test_conversation_list_is_paginated(client: httpx.AsyncClient) -> None:
    ids = [(await new_conversation(client, title=str(i)))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/conversations", params=params)).json()
        seen += [c["id"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


# --- sending, streaming --------------------------------------------------------------------


async def test_send_streams_the_run_and_saves_the_answer(client: httpx.AsyncClient) -> None:
    conversation = await new_conversation(client, system_prompt="You are terse.")
    response = await send(client, conversation["id"], content="What is SSE?")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content.startswith(b"retry: 3000\n\n")

    stream = run_stream(response.content)
    assert stream.types[0] == "run"
    assert stream.types[-1] == "done"
    assert set(stream.types[1:-1]) == {"delta"}
    assert stream.ids == list(range(len(stream.events)))
    expected = await demo_answer(
        [ChatMessage("system", "You are terse."), ChatMessage("user", "What is SSE?")]
    )
    assert stream.text == expected
    assert stream.done["status"] == "complete"
    assert stream.done["finish_reason"] == "stop"
    assert stream.done["usage"]["completion_tokens"] > 0

    run = stream.first("run")
    saved = (await client.get(f"/api/conversations/{conversation['id']}")).json()
    by_id = {m["id"]: m for m in saved["messages"]}
    answer = by_id[run["message_id"]]
    assert answer["content"] == expected
    assert answer["status"] == "complete"
    assert answer["parent_id"] == run["user_message_id"]
    assert by_id[run["user_message_id"]]["content"] == "What is SSE?"
    assert saved["current_leaf_id"] == run["message_id"]
    assert saved["title"]  # named after the first answer
    assert saved["model"] == "demo"


async def test_202_then_follow_the_events_url(client: httpx.AsyncClient) -> None:
    conversation = await new_conversation(client)
    accepted = await client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"content": "hi"}
    )
    assert accepted.status_code == 202
    body = accepted.json()
    assert set(body) == set(GenerationAccepted.model_fields)
    assert body["events_url"] == f"/api/runs/{body['run_id']}/events"
    assert accepted.headers["location"] == body["events_url"]
    assert accepted.headers["content-type"] == "application/json"
    events = await client.get(body["events_url"])
    stream = run_stream(events.content)
    assert stream.first("run")["run_id"] == body["run_id"]
    assert stream.done["status"] == "complete"
    state = (await client.get(f"/api/runs/{body['run_id']}")).json()
    assert state["status"] == "complete"
    assert state["text"] == stream.text


@pytest.mark.parametrize("how", ["header", "query"])
async def test_last_event_id_resumes_without_gap_or_duplicate(
    client: httpx.AsyncClient, how: str
) -> None:
    conversation = await new_conversation(client)
    full = run_stream((await send(client, conversation["id"], content="resume me")).content)
    run_id = full.first("run")["run_id"]
    for cut in (0, 3, len(full.events) - 2):
        if how == "header":
            response = await client.get(
                f"/api/runs/{run_id}/events", headers={"Last-Event-ID": str(cut)}
            )
        else:
            response = await client.get(
                f"/api/runs/{run_id}/events", params={"last_event_id": str(cut)}
            )
        rest = run_stream(response.content)
        assert rest.ids == list(range(cut + 1, len(full.events)))
        seen = run_stream(b"".join(_frames_upto(full, cut)))
        assert seen.text + rest.text == full.text


def _frames_upto(stream: Any, cut: int) -> list[bytes]:
    from ssechat.sse import encode

    return [
        encode(e.data, event=e.type, id=e.last_event_id)
        for e in stream.events
        if int(e.last_event_id) <= cut
    ]


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "99999", "1 2", "0x1"])
async def test_malformed_last_event_id_is_refused(client: httpx.AsyncClient, bad: str) -> None:
    conversation = await new_conversation(client)
    full = run_stream((await send(client, conversation["id"], content="x")).content)
    run_id = full.first("run")["run_id"]
    response = await client.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": bad})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


async def test_cancel_of_a_finished_run_answers_its_final_state(
    client: httpx.AsyncClient,
) -> None:
    conversation = await new_conversation(client)
    full = run_stream((await send(client, conversation["id"], content="x")).content)
    run_id = full.first("run")["run_id"]
    for _ in range(2):  # idempotent
        response = await client.post(f"/api/runs/{run_id}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "complete"
        assert response.json()["text"] == full.text


async def test_deleting_a_conversation_stops_its_live_run(settings: Settings) -> None:
    slow = dataclasses.replace(settings, demo_tokens_per_second=2)  # live for seconds
    async with api_client(slow) as client:
        conversation = await new_conversation(client)
        keep = await new_conversation(client)
        accepted = (await send_202(client, conversation["id"], "a long answer, please")).json()
        other = (await send_202(client, keep["id"], "and another")).json()
        running = await client.get(f"/api/runs/{accepted['run_id']}")
        assert running.json()["status"] == "running"

        deleted = await client.delete(f"/api/conversations/{conversation['id']}")

        assert deleted.status_code == 204
        assert (await client.get(f"/api/runs/{accepted['run_id']}")).json()["status"] == "stopped"
        events = run_stream((await client.get(accepted["events_url"])).content)
        assert events.done["status"] == "stopped"
        assert (await client.get(f"/api/conversations/{conversation['id']}")).status_code == 404
        # Another conversation's run goes on.
        assert (await client.get(f"/api/runs/{other['run_id']}")).json()["status"] == "running"
        await client.post(f"/api/runs/{other['run_id']}/cancel")


async def send_202(client: httpx.AsyncClient, conversation_id: str, content: str) -> httpx.Response:
    response = await client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": content}
    )
    assert response.status_code == 202, response.text
    return response


# --- branches ------------------------------------------------------------------------------


async def test_regenerate_makes_a_sibling_and_edit_makes_a_branch(
    client: httpx.AsyncClient,
) -> None:
    conversation = await new_conversation(client)
    cid = conversation["id"]
    first = run_stream((await send(client, cid, content="one")).content).first("run")
    regen = await client.post(f"/api/messages/{first['message_id']}/regenerate", headers=SSE)
    assert regen.status_code == 200
    second = run_stream(regen.content).first("run")
    assert second["user_message_id"] == first["user_message_id"]
    assert second["message_id"] != first["message_id"]

    tree = (await client.get(f"/api/conversations/{cid}")).json()
    children = [m for m in tree["messages"] if m["parent_id"] == first["user_message_id"]]
    assert sorted(m["id"] for m in children) == sorted([first["message_id"], second["message_id"]])
    assert tree["current_leaf_id"] == second["message_id"]

    # Edit the first question: a new user message with the same (root) parent.
    edited = run_stream((await send(client, cid, content="one, edited", parent_id=None)).content)
    edit_run = edited.first("run")
    tree = (await client.get(f"/api/conversations/{cid}")).json()
    roots = [m for m in tree["messages"] if m["parent_id"] is None]
    assert sorted(m["id"] for m in roots) == sorted(
        [first["user_message_id"], edit_run["user_message_id"]]
    )

    # Switch back to the first branch.
    switched = await client.patch(
        f"/api/conversations/{cid}", json={"current_leaf_id": first["message_id"]}
    )
    assert switched.json()["current_leaf_id"] == first["message_id"]
    # Both answers are sent as built, unvalidated: they must hold to their documented schema.
    detail = ConversationDetail.model_validate_json(switched.content)
    assert detail.model_dump(mode="json") == switched.json()
    got = await client.get(f"/api/conversations/{cid}")
    assert ConversationDetail.model_validate_json(got.content).model_dump(mode="json") == got.json()
    assert {m.usage is not None for m in detail.messages if m.role == "assistant"} == {True}


async def test_continuing_sends_the_whole_branch_as_context(client: httpx.AsyncClient) -> None:
    conversation = await new_conversation(client)
    cid = conversation["id"]
    one = run_stream((await send(client, cid, content="first question")).content)
    two = run_stream((await send(client, cid, content="second question")).content)
    expected = await demo_answer(
        [
            ChatMessage("user", "first question"),
            ChatMessage("assistant", one.text),
            ChatMessage("user", "second question"),
        ]
    )
    assert two.text == expected
    assert two.first("run")["user_message_id"] != one.first("run")["user_message_id"]


# --- the tutorial's stateless /api/chat ----------------------------------------------------


async def test_chat_get_streams_data_frames_then_done(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/chat", params={"message": "hello there"})
    assert response.status_code == 200
    events = parse_events([response.content])
    assert events[-1].data == "[DONE]"
    assert all(e.type == "message" for e in events)
    text = "".join(e.data for e in events[:-1])
    assert text == await demo_answer([ChatMessage("user", "hello there")])
    assert any("\n" in e.data for e in events[:-1])  # newlines travel as multi-line data
    assert (await client.get("/api/conversations")).json()["conversations"] == []


async def test_chat_post_takes_the_messages_array(client: httpx.AsyncClient) -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    response = await client.post("/api/chat", json={"messages": messages})
    events = parse_events([response.content])
    assert events[-1].data == "[DONE]"
    expected = await demo_answer([ChatMessage(m["role"], m["content"]) for m in messages])  # type: ignore[arg-type]
    assert "".join(e.data for e in events[:-1]) == expected


# --- bad input: a clear 4xx, and nothing changes -------------------------------------------


async def test_bad_inputs_get_4xx_and_change_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    conversation = await new_conversation(client, title="keep")
    other = await new_conversation(client, title="other")
    cid = conversation["id"]
    run = run_stream((await send(client, cid, content="seed")).content).first("run")
    other_run = run_stream((await send(client, other["id"], content="x")).content).first("run")
    deleted = await new_conversation(client)
    await client.delete(f"/api/conversations/{deleted['id']}")
    before = await snapshot(client)

    too_long = "x" * (settings.max_content_chars + 1)
    msg_url = f"/api/conversations/{cid}/messages"
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", msg_url, {"content": b'{"content": "x"', "headers": JSON}, 400, "invalid_json"),
        ("POST", msg_url, {"json": {}}, 422, "invalid_request"),
        ("POST", msg_url, {"json": {"content": ""}}, 422, "invalid_request"),
        ("POST", msg_url, {"json": {"content": "  \n "}}, 422, "invalid_request"),
        ("POST", msg_url, {"json": {"content": 5}}, 422, "invalid_request"),
        ("POST", msg_url, {"json": {"content": "x", "role": "system"}}, 422, "invalid_request"),
        ("POST", msg_url, {"json": {"content": too_long}}, 413, "payload_too_large"),
        ("POST", msg_url, {"json": {"content": "x", "temperature": 9}}, 422, "invalid_request"),
        ("POST", msg_url, {"json": {"content": "x", "model": "gpt-x"}}, 400, "invalid_request"),
        (
            "POST",
            msg_url,
            {"json": {"content": "x", "parent_id": other_run["message_id"]}},
            400,
            "invalid_request",
        ),
        ("POST", msg_url, {"json": {"content": "x", "parent_id": "nope"}}, 404, "not_found"),
        ("POST", "/api/conversations/nope/messages", {"json": {"content": "x"}}, 404, "not_found"),
        (
            "POST",
            f"/api/conversations/{deleted['id']}/messages",
            {"json": {"content": "x"}},
            404,
            "not_found",
        ),
        ("GET", f"/api/conversations/{deleted['id']}", {}, 404, "not_found"),
        ("DELETE", f"/api/conversations/{deleted['id']}", {}, 404, "not_found"),
        ("PATCH", f"/api/conversations/{cid}", {"json": {"current_leaf_id": "nope"}}, 400, ""),
        (
            "PATCH",
            f"/api/conversations/{cid}",
            {"json": {"current_leaf_id": other_run["message_id"]}},
            400,
            "invalid_request",
        ),
        ("PATCH", f"/api/conversations/{cid}", {"json": {"title": 3}}, 422, "invalid_request"),
        ("PATCH", f"/api/conversations/{cid}", {"json": {"colour": "red"}}, 422, ""),
        ("POST", "/api/conversations", {"json": {"model": "gpt-x"}}, 400, "invalid_request"),
        ("POST", "/api/conversations", {"json": {"system_prompt": too_long}}, 413, ""),
        ("POST", "/api/messages/nope/regenerate", {}, 404, "not_found"),
        ("GET", "/api/runs/nope", {}, 404, "not_found"),
        ("GET", "/api/runs/nope/events", {}, 404, "not_found"),
        ("POST", "/api/runs/nope/cancel", {}, 404, "not_found"),
        ("GET", f"/api/runs/{run['run_id']}/events", {"headers": {"Last-Event-ID": "x"}}, 400, ""),
        ("GET", "/api/chat", {}, 422, "invalid_request"),
        ("GET", "/api/chat", {"params": {"message": ""}}, 422, "invalid_request"),
        ("GET", "/api/chat", {"params": {"message": "  "}}, 400, "invalid_request"),
        ("POST", "/api/chat", {"json": {"messages": []}}, 422, "invalid_request"),
        (
            "POST",
            "/api/chat",
            {"json": {"messages": [{"role": "wizard", "content": "x"}]}},
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/chat",
            {"json": {"messages": [{"role": "assistant", "content": "x"}]}},
            400,
            "invalid_request",
        ),
        ("POST", "/api/conversations", {"content": b"[1,2", "headers": JSON}, 400, "invalid_json"),
        ("GET", "/api/conversations", {"params": {"limit": 0}}, 422, "invalid_request"),
        ("GET", "/api/conversations", {"params": {"cursor": "garbage"}}, 400, "invalid_request"),
        ("GET", "/api/nothing-here", {}, 404, "not_found"),
        ("PUT", "/api/conversations", {}, 405, "method_not_allowed"),
    ]
    for method, url, kwargs, status, code in cases:
        response = await client.request(method, url, **kwargs)
        assert response.status_code == status, (method, url, kwargs, response.text)
        error = ErrorBody.model_validate_json(response.content).error
        assert error.message, (method, url)
        if code:
            assert error.code == code, (method, url, error)
    assert await snapshot(client) == before


async def test_the_web_ui_is_served_with_a_single_page_fallback(tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>ssechat</title>")
    (web / "assets" / "app.js").write_text("console.log(1)")
    settings = Settings(
        database_url=str(tmp_path / "w.db"), web_dir=str(web), auth="off", allowed_hosts="test"
    )
    async with api_client(settings) as client:
        index = await client.get("/")
        deep = await client.get("/c/some-conversation")
        asset = await client.get("/assets/app.js")
        api_404 = await client.get("/api/unknown")
    assert index.status_code == 200
    assert "ssechat" in index.text
    # Every HTML answer carries the page's whole policy as a header (a build without the <meta>
    # is covered too); other files only say that nothing may frame them.
    policy = CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'"
    assert index.headers["content-security-policy"] == policy
    assert deep.text == index.text
    assert deep.headers["content-security-policy"] == policy
    assert asset.text == "console.log(1)"
    assert asset.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert api_404.status_code == 404
    assert api_404.json()["error"]["code"] == "not_found"


async def test_without_a_built_ui_the_root_says_how_to_build_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "make run" in response.text
