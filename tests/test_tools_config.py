"""The ``mcpServers`` entry shape: what is accepted, what is refused, and that no secret shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ssechat.tools import ConfigError, ServerSpec, function_name, parse_entry, parse_file

SECRET = "s3cret-value-91c4"


def parse(obj: object, name: str = "srv") -> ServerSpec:
    return parse_entry(name, obj, source="file")


def test_a_stdio_entry_with_every_key() -> None:
    spec = parse(
        {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-everything"],
            "env": {"API_TOKEN": SECRET},
            "cwd": "/tmp",
            "alwaysAllow": ["echo", "add"],
            "timeout": 12,
            "someOtherClientsKey": {"ignored": True},
        }
    )
    assert spec.name == "srv"
    assert spec.source == "file"
    assert spec.transport == "stdio"
    assert spec.command == "npx"
    assert spec.args == ("-y", "@modelcontextprotocol/server-everything")
    assert dict(spec.env) == {"API_TOKEN": SECRET}
    assert spec.cwd == "/tmp"
    assert spec.url is None
    assert spec.enabled is True
    assert spec.always_allow == frozenset({"echo", "add"})
    assert spec.timeout == 12.0


def test_a_minimal_stdio_entry_has_empty_defaults() -> None:
    spec = parse_entry("a", {"type": "stdio", "command": "server"}, source="admin")
    assert (spec.source, spec.transport, spec.args, dict(spec.env), spec.cwd) == (
        "admin",
        "stdio",
        (),
        {},
        None,
    )
    assert (spec.always_allow, spec.timeout, spec.enabled) == (frozenset(), None, True)


@pytest.mark.parametrize(
    "kind", [None, "http", "streamable-http", "streamableHttp", "streamable_http"]
)
def test_a_streamable_http_entry(kind: str | None) -> None:
    entry: dict[str, Any] = {"url": "https://mcp.example.com/mcp", "headers": {"X-Key": SECRET}}
    if kind is not None:
        entry["type"] = kind
    spec = parse(entry)
    assert spec.transport == "http"
    assert spec.url == "https://mcp.example.com/mcp"
    assert dict(spec.headers) == {"X-Key": SECRET}
    assert spec.command is None


@pytest.mark.parametrize(
    ("flags", "enabled"),
    [
        ({}, True),
        ({"disabled": True}, False),
        ({"disabled": False}, True),
        ({"enabled": False}, False),
        ({"enabled": True}, True),
        ({"enabled": True, "disabled": True}, False),
    ],
)
def test_disabled_and_enabled(flags: dict[str, bool], enabled: bool) -> None:
    assert parse({"command": "x", **flags}).enabled is enabled


def test_the_legacy_sse_transport_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="legacy SSE transport") as caught:
        parse({"type": "sse", "url": "http://127.0.0.1:9/sse"})
    assert "'srv'" in str(caught.value)


@pytest.mark.parametrize("name", ["", "-lead", "_lead", "has space", "a/b", "x" * 33, "é", 5, None])
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(ConfigError, match="name"):
        parse_entry(name, {"command": "x"}, source="file")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a", "A1", "my-server_2", "x" * 32, "0day"])
def test_good_names_are_accepted(name: str) -> None:
    assert parse({"command": "x"}, name=name).name == name


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({}, "command"),
        ({"type": "stdio"}, "command"),
        ({"type": "http"}, "url"),
        ({"command": ""}, "command"),
        ({"command": 5}, "command"),
        ({"command": "x", "url": "http://h/mcp"}, "command"),
        ({"command": "x", "args": "--flag"}, "args"),
        ({"command": "x", "args": [1, 2]}, "args"),
        ({"command": "x", "env": ["A"]}, "env"),
        ({"command": "x", "env": {"A": 1}}, "env"),
        ({"command": "x", "env": {"A=B": "v"}}, "env"),
        ({"command": "x", "cwd": 3}, "cwd"),
        ({"command": "x", "disabled": "yes"}, "disabled"),
        ({"command": "x", "enabled": 1}, "enabled"),
        ({"command": "x", "alwaysAllow": "echo"}, "alwaysAllow"),
        ({"command": "x", "timeout": -1}, "timeout"),
        ({"command": "x", "timeout": "5"}, "timeout"),
        ({"command": "x", "timeout": True}, "timeout"),
        ({"command": "x", "type": 7}, "type"),
        ({"command": "x", "type": "websocket"}, "type"),
        ({"url": 5}, "url"),
        ({"url": "ftp://host/mcp"}, "url"),
        ({"url": "http:///mcp"}, "url"),
        ({"url": "http://host:port/mcp"}, "url"),
        ({"url": "http://h/mcp", "headers": "X-Key: v"}, "headers"),
        ({"url": "http://h/mcp", "headers": {"X-Key": 5}}, "headers"),
        ({"url": "http://h/mcp", "headers": {"Bad Name": "v"}}, "headers"),
    ],
)
def test_wrong_shapes_are_refused_naming_the_server_and_the_key(
    entry: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(entry)
    message = str(caught.value)
    assert "'srv'" in message
    assert repr(key) in message


@pytest.mark.parametrize("entry", ["npx server", ["npx"], 3, None])
def test_an_entry_must_be_an_object(entry: object) -> None:
    with pytest.raises(ConfigError, match="'srv': the entry must be a JSON object"):
        parse(entry)


@pytest.mark.parametrize(
    "entry",
    [
        {"command": "x", "env": {"TOKEN": f"{SECRET}\n"}},
        {"command": "x", "env": {"TOKEN": f"{SECRET}\x00"}},
        {"url": "http://h/mcp", "headers": {"Authorization": f"Bearer {SECRET}\r\nX: y"}},
    ],
)
def test_a_refused_value_is_never_in_the_message(entry: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(entry)
    assert SECRET not in str(caught.value)
    assert "'srv'" in str(caught.value)


def test_public_holds_names_but_no_secret_value() -> None:
    stdio = parse({"command": "srv", "args": ["--x"], "env": {"TOKEN": SECRET, "A": SECRET}})
    http = parse(
        {"url": f"https://bob:{SECRET}@mcp.example.com:8443/mcp?x=1", "headers": {"X-Key": SECRET}},
        name="web",
    )
    dump = json.dumps([stdio.public(), http.public()])
    assert SECRET not in dump
    assert SECRET not in repr(stdio) + repr(http)
    assert stdio.public() == {
        "name": "srv",
        "source": "file",
        "transport": "stdio",
        "command": "srv",
        "args": ["--x"],
        "cwd": None,
        "url": None,
        "env": ["A", "TOKEN"],
        "headers": [],
        "enabled": True,
    }
    assert http.public()["url"] == "https://mcp.example.com:8443/mcp?x=1"
    assert http.public()["headers"] == ["X-Key"]
    assert http.public()["transport"] == "http"


def test_only_connection_changes_need_a_restart() -> None:
    base = {"command": "srv", "env": {"A": "1"}}
    spec = parse(base)
    assert spec.connection() == parse({**base, "alwaysAllow": ["x"], "timeout": 3}).connection()
    assert spec.connection() != parse({**base, "env": {"A": "2"}}).connection()
    assert spec.connection() != parse({**base, "args": ["--v"]}).connection()


@pytest.mark.parametrize(
    ("server", "tool", "expected"),
    [
        ("files", "read_file", "files__read_file"),
        ("my-srv", "get.weather/now", "my-srv__get_weather_now"),
        ("s", "outil é", "s__outil__"),
        ("a" * 32, "b" * 40, ("a" * 32 + "__" + "b" * 40)[:64]),
    ],
)
def test_function_name(server: str, tool: str, expected: str) -> None:
    name = function_name(server, tool)
    assert name == expected
    assert len(name) <= 64


def test_parse_file_reads_every_server_in_order(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "files": {"command": "mcp-files", "args": ["/srv"]},
                    "web": {"type": "http", "url": "http://127.0.0.1:9/mcp", "disabled": True},
                },
                "otherTopLevelKey": 1,
            }
        )
    )
    specs = parse_file(path)
    assert [(s.name, s.transport, s.enabled, s.source) for s in specs] == [
        ("files", "stdio", True, "file"),
        ("web", "http", False, "file"),
    ]


def test_parse_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        parse_file(tmp_path / "nope.json")


def test_parse_file_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="could not read"):
        parse_file(tmp_path)  # a directory


def test_parse_file_invalid_json_does_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {"a": {"command": "x", "env": {"T": "' + SECRET + '"}}')
    with pytest.raises(ConfigError, match="not valid JSON") as caught:
        parse_file(path)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("document", [[], {"servers": {}}, {"mcpServers": []}])
def test_parse_file_needs_an_mcp_servers_object(tmp_path: Path, document: object) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match='"mcpServers" object'):
        parse_file(path)


def test_parse_file_names_the_bad_server(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"ok": {"command": "x"}, "bad": {"type": "sse"}}}))
    with pytest.raises(ConfigError, match="'bad'"):
        parse_file(path)
