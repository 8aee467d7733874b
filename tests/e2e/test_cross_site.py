"""Another site cannot act for a signed-in user, read their answers, or reach the API at all
through a rebound DNS name.

The victim is a browser context signed in to ssechat at 127.0.0.1; the attacker's page comes
from 127.0.0.2 (another site: ``attacker.py``). The page tries every way a page has of sending a
request (``fetch`` with and without credentials and in ``no-cors`` mode, form posts, an image,
``EventSource``, a top-level navigation) and reports how each ended into ``window.results``; the
test waits until every attempt has reported. Proof that nothing happened: the fake upstream,
running in this process, received no request, and a plain-SQL dump of the database is the same
before and after. DNS rebinding is played with Chromium's ``--host-resolver-rules``: the name
``rebind.test`` resolves to 127.0.0.1, so a page of that name reaches the server with a foreign
``Host``, which is refused before anything else is looked at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ssechat.fake_upstream import FakeUpstream
from tests.e2e import harness
from tests.e2e.attacker import ATTACKER_HOST, AttackerSite
from tests.e2e.harness import SESSION_COOKIE, Browser, Server

pytest.importorskip("playwright.sync_api", reason="the end-to-end tests need playwright")

from playwright.sync_api import TimeoutError as PlaywrightTimeout

Victim = tuple[Server, FakeUpstream]

ATTACK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A harmless page</title></head>
<body><h1>Nothing to see here</h1>
<script>
const T = %(target)s, CID = %(conversation)s, RUN = %(run)s, ANSWER = %(answer)s;
window.results = {};
window.pending = [];
window.started = false;
function expect(name) { window.pending.push(name); return name; }
function finish(name, outcome) {
  if (name in window.results) return;
  window.results[name] = String(outcome);
  window.pending = window.pending.filter((n) => n !== name);
}

// fetch: each target with and without credentials, opaque (no-cors), and preflighted (JSON).
const targets = [
  ["create a conversation", T + "/api/conversations", "POST",
   JSON.stringify({ title: "made by another site" })],
  ["send a message", T + "/api/conversations/" + CID + "/messages", "POST",
   JSON.stringify({ content: "sent by another site" })],
  ["regenerate", T + "/api/messages/" + ANSWER + "/regenerate", "POST", "{}"],
  ["rename", T + "/api/conversations/" + CID, "PATCH", JSON.stringify({ title: "renamed" })],
  ["delete", T + "/api/conversations/" + CID, "DELETE", null],
  ["one-shot chat (POST)", T + "/api/chat", "POST",
   JSON.stringify({ messages: [{ role: "user", content: "another site asks" }] })],
  ["one-shot chat (GET)", T + "/api/chat?message=another+site+asks", "GET", null],
  ["cancel the run", T + "/api/runs/" + RUN + "/cancel", "POST", null],
  ["read the run", T + "/api/runs/" + RUN + "/events", "GET", null],
  ["sign out", T + "/api/auth/logout", "POST", null],
];
const modes = {
  "with credentials": { credentials: "include" },
  "without credentials": { credentials: "omit" },
  "no-cors, with credentials": { mode: "no-cors", credentials: "include" },
  "no-cors, without credentials": { mode: "no-cors", credentials: "omit" },
  "as JSON (preflighted), with credentials": {
    credentials: "include", headers: { "Content-Type": "application/json" } },
};
for (const [what, url, method, body] of targets) {
  for (const [how, init] of Object.entries(modes)) {
    const name = expect("fetch: " + what + ", " + how);
    fetch(url, { method, body: body ?? undefined, ...init }).then(
      async (r) => finish(name, "answered " + r.type + " " + r.status +
                                (r.type === "opaque" ? "" : " " + (await r.text()).slice(0, 80))),
      (e) => finish(name, "failed " + e.name));
  }
}

// A form posted into a frame (what a page can do without any script on the target).
function postForm(what, action, fields) {
  const name = expect("form: " + what);
  const frame = document.createElement("iframe");
  frame.name = "sink" + window.pending.length;
  // The frame's first (about:blank) load happens as it is inserted: the next one is the answer.
  document.body.append(frame);
  frame.addEventListener("load", () => finish(name, "loaded"), { once: true });
  const form = document.createElement("form");
  form.method = "POST";
  form.action = action;
  form.target = frame.name;
  form.enctype = "text/plain";
  for (const [key, value] of fields) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = key;
    input.value = value;
    form.append(input);
  }
  document.body.append(form);
  form.submit();
}
// text/plain makes the body {"content":"posted by another site","x":"="}: JSON, if it is let in.
postForm("send a message", T + "/api/conversations/" + CID + "/messages",
         [['{"content":"posted by another site","x":"', '"}']]);
postForm("sign out", T + "/api/auth/logout", []);

// An image: a GET that carries no custom header, the classic way to start a generation.
{
  const name = expect("img: one-shot chat");
  const img = new Image();
  img.onload = () => finish(name, "loaded an image");
  img.onerror = () => finish(name, "error");
  img.src = T + "/api/chat?message=an+image+asks";
}

// EventSource: the victim's live or finished run, and the one-shot chat.
function listen(what, url, withCredentials) {
  const name = expect("EventSource: " + what + (withCredentials ? ", with credentials" : ""));
  const source = new EventSource(url, { withCredentials });
  const read = (e) => { finish(name, "read " + e.type + " " + e.data); source.close(); };
  source.onmessage = read;
  for (const type of ["run", "delta", "done", "error"]) source.addEventListener(type, (e) => {
    if (e.data !== undefined) read(e);
  });
  source.onopen = () => { finish(name, "opened"); source.close(); };
  source.onerror = () => { finish(name, "error"); source.close(); };
}
for (const credentials of [false, true]) {
  listen("the victim's run", T + "/api/runs/" + RUN + "/events", credentials);
  listen("one-shot chat", T + "/api/chat?message=a+stream+asks", credentials);
}
window.started = true;
</script></body></html>
"""

NAVIGATE_PAGE = """<!doctype html><html lang="en"><head><title>Redirecting</title></head><body>
<script>location.href = %(target)s + "/api/chat?message=a+navigation+asks";</script>
</body></html>"""

# How an attempt may end: refused, unreadable, or failed. Anything else (an answer the page can
# read, an event read from a stream, an open stream, an image) means the attack got through.
HARMLESS = {"failed TypeError", "answered opaque 0", "error", "loaded"}


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victim]:
    """ssechat against a fake upstream in this process, whose ``requests`` the test reads."""
    with FakeUpstream.running_in_thread() as upstream:
        workdir = tmp_path_factory.mktemp("victim")
        try:
            with harness.ssechat_serve(workdir, upstream.base_url) as server:
                yield server, upstream
        except RuntimeError as exc:
            pytest.fail(str(exc))


def victims_run(server: Server, upstream: FakeUpstream) -> dict[str, str]:
    """A conversation of the victim with a finished answer: the ids of both, and of its run.
    The title is given, so nothing names the conversation later (the dump stays still)."""
    conversation_id = server.new_conversation(title="the victim's chat")
    started = server.api(
        "POST", f"/api/conversations/{conversation_id}/messages", {"content": "a secret question"}
    )
    assert server.wait_for_answer(conversation_id)["status"] == "complete"
    # The wiring the proof relies on: a real generation does reach this fake upstream.
    assert any(r.path.endswith("/chat/completions") for r in upstream.requests)
    return {
        "conversation": conversation_id,
        "answer": str(started["message_id"]),
        "run": str(started["run_id"]),
    }


def test_another_site_can_neither_act_nor_read(ui: Browser, victim: Victim) -> None:
    server, upstream = victim
    ids = victims_run(server, upstream)
    conversation_id, run_id = ids["conversation"], ids["run"]
    ui.allowed_hosts.add(ATTACKER_HOST)
    context = ui.context(server=server)
    assert context.request.get(server.base_url + "/api/auth/me").status == 200
    session = next(c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE)
    answered: list[Any] = []
    context.on(
        "response", lambda r: answered.append(r) if r.url.startswith(server.base_url) else None
    )

    values = {name: json.dumps(value) for name, value in {**ids, "target": server.base_url}.items()}
    before, upstream_before = server.dump(), len(upstream.requests)
    with AttackerSite({"/": ATTACK_PAGE % values, "/navigate": NAVIGATE_PAGE % values}) as site:
        page = context.new_page()
        ui.watch_page(page)
        page.goto(site.base_url + "/")
        try:
            page.wait_for_function(
                "() => window.started && window.pending.length === 0", timeout=60_000
            )
        except PlaywrightTimeout:
            state = page.evaluate("({pending: window.pending, results: window.results})")
            raise AssertionError(
                f"attempts that never ended: {json.dumps(state, indent=2)}"
            ) from None
        results: dict[str, str] = page.evaluate("window.results")

        # A top-level navigation is the one request that carries the Lax cookie across sites.
        navigation = context.new_page()
        ui.watch_page(navigation)
        with navigation.expect_response(lambda r: "/api/chat?" in r.url) as navigated:
            navigation.goto(site.base_url + "/navigate")
        refused = navigated.value
        assert refused.status == 403
        assert f"{SESSION_COOKIE}=" in (refused.request.header_value("cookie") or "")

        # The same requests as a program would send them, with the cookie: refused too.
        origin = {"Origin": site.base_url}
        for method, path in [
            ("POST", "/api/conversations"),
            ("POST", f"/api/conversations/{conversation_id}/messages"),
            ("POST", f"/api/runs/{run_id}/cancel"),
            ("POST", f"/api/messages/{ids['answer']}/regenerate"),
            ("PATCH", f"/api/conversations/{conversation_id}"),
            ("DELETE", f"/api/conversations/{conversation_id}"),
            ("POST", "/api/auth/logout"),
            ("GET", "/api/chat?message=hello"),
        ]:
            reply = server.call(method, path, {"content": "x"}, session=session, headers=origin)
            assert reply.status == 403, (method, path, reply)
            assert "access-control-allow-origin" not in reply.headers
            preflight = server.call(
                "OPTIONS",
                path,
                headers={**origin, "Access-Control-Request-Method": method},
            )
            assert "access-control-allow-origin" not in preflight.headers, (method, path)

    got_through = {name: outcome for name, outcome in results.items() if outcome not in HARMLESS}
    assert got_through == {}, json.dumps(got_through, indent=2)
    assert {name.split(":")[0] for name in results} == {"fetch", "form", "img", "EventSource"}
    # Nothing was generated, nothing was written.
    assert upstream.requests[upstream_before:] == []
    assert server.dump() == before
    # What did reach the server was refused, and no answer invited another origin to read it.
    assert answered, "no attempt reached the server (the test would prove nothing)"
    for response in answered:
        assert response.status >= 400, f"{response.request.method} {response.url}"
        assert "access-control-allow-origin" not in response.headers, response.url
    assert context.request.get(server.base_url + "/api/auth/me").status == 200  # still signed in


def test_dns_rebinding_meets_the_host_check(playwright: Any, victim: Victim) -> None:
    server, upstream = victim
    victims_run(server, upstream)
    port = server.base_url.rsplit(":", 1)[1]
    rebound = f"http://rebind.test:{port}"
    chromium = playwright.chromium.launch(
        executable_path=harness.CHROMIUM,
        args=[*harness.CHROMIUM_ARGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"],
    )
    helper = Browser(chromium, server)
    helper.allowed_hosts.add("rebind.test")
    try:
        context = helper.context(server=server)  # the victim is signed in at 127.0.0.1
        before, upstream_before = server.dump(), len(upstream.requests)
        page = context.new_page()
        helper.watch_page(page)
        # The rebound name leads to ssechat, which answers nothing to that Host.
        response = page.goto(rebound + "/")
        assert response is not None
        assert response.status == 400
        assert json.loads(response.text())["error"]["code"] == "invalid_host"
        # A script of that origin (what the attacker's page runs once its name points here).
        statuses = page.evaluate(
            """async () => {
                const tries = [
                  ["GET", "/api/conversations"], ["GET", "/api/auth/status"],
                  ["GET", "/api/health"], ["GET", "/api/chat?message=rebound"],
                  ["POST", "/api/conversations"], ["POST", "/api/auth/login"],
                ];
                const out = {};
                for (const [method, path] of tries) {
                  const body = method === "POST" ? "{}" : undefined;
                  const r = await fetch(path, { method, body, credentials: "include" });
                  out[method + " " + path] = r.status;
                }
                return out;
            }"""
        )
        assert set(statuses.values()) == {400}, statuses
        assert upstream.requests[upstream_before:] == []
        assert server.dump() == before
        # And outside a browser: a foreign Host is refused, an allowed one is not.
        assert (
            server.call("GET", "/api/health", headers={"Host": f"rebind.test:{port}"}).status == 400
        )
        assert server.call("GET", "/api/health").status == 200
    finally:
        helper.close()
        chromium.close()
    assert helper.watch.foreign_requests == []
    assert helper.watch.dialogs == []
    assert helper.watch.page_errors == []
