"""ssechat.transfer.librechat: LibreChat's exports (recursive tree and flat list) parse to the
tree computed here, independently, from the raw JSON; and each of the module's rules, including
every refusal with its JSON path."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ssechat.transfer.librechat import NO_PARENT, parse_librechat, seconds
from ssechat.transfer.model import ImportedConversation, ImportFormatError

FIXTURES = Path("/work/shared/fixtures/chat-exports")
TREE = FIXTURES / "librechat-tree.json"
FLAT = FIXTURES / "librechat-flat-branches.json"


def load(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


def plain_time(text: str) -> float:
    # Another parser than the module's (strptime, not fromisoformat): LibreChat writes
    # JavaScript's toISOString, always milliseconds and Z.
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def walk_tree(messages: list[dict[str, Any]], parent: str | None = None) -> list[dict[str, Any]]:
    """Every message of a recursive export with the id of the message it is nested in."""
    found = []
    for message in messages:
        found.append({**message, "_parent": parent})
        found.extend(walk_tree(message.get("children", []), message["messageId"]))
    return found


def walk_flat(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**m, "_parent": None if m["parentMessageId"] == NO_PARENT else m["parentMessageId"]}
        for m in messages
    ]


def expected_status(raw: dict[str, Any]) -> str:
    if raw.get("isCreatedByUser"):
        return "complete"
    if raw.get("unfinished"):
        return "interrupted"
    return {"incomplete": "stopped"}.get(raw.get("finish_reason") or "", "complete")


def check_against_raw(
    conversation: ImportedConversation, raw: dict[str, Any], walked: list[Any]
) -> None:
    assert conversation.source == "librechat"
    assert conversation.source_id == raw["conversationId"]
    assert conversation.title == raw["title"]
    assert conversation.model == raw["options"]["model"]
    assert conversation.system_prompt == raw["options"]["promptPrefix"]
    assert conversation.current_leaf_id is None

    by_id = {m.id: m for m in conversation.messages}
    assert len(by_id) == len(conversation.messages) == len(walked)
    for raw_message in walked:
        message = by_id[raw_message["messageId"]]
        assert message.parent_id == raw_message["_parent"]
        assert message.content == raw_message["text"]
        assert message.role == ("user" if raw_message["isCreatedByUser"] else "assistant")
        assert message.status == expected_status(raw_message)
        if "createdAt" in raw_message:
            assert message.created_at == pytest.approx(plain_time(raw_message["createdAt"]))
        else:
            assert message.created_at is None
        if "updatedAt" in raw_message:
            assert message.updated_at == pytest.approx(plain_time(raw_message["updatedAt"]))
        if not raw_message["isCreatedByUser"]:
            assert message.model == raw_message["model"]
            assert message.finish_reason == raw_message.get("finish_reason")

    # Parents before children, as the model requires.
    seen: set[str] = set()
    for message in conversation.messages:
        assert message.parent_id is None or message.parent_id in seen
        seen.add(message.id)

    times = [plain_time(m[k]) for m in walked for k in ("createdAt", "updatedAt") if k in m]
    created = [plain_time(m["createdAt"]) for m in walked if "createdAt" in m]
    assert conversation.created_at == pytest.approx(min(created))
    assert conversation.updated_at == pytest.approx(max(times))


def branch_points(walked: list[dict[str, Any]]) -> int:
    children: dict[str | None, int] = {}
    for m in walked:
        children[m["_parent"]] = children.get(m["_parent"], 0) + 1
    return sum(1 for parent, n in children.items() if parent is not None and n > 1)


def test_the_recursive_tree_export_keeps_every_branch() -> None:
    raw = load(TREE)
    walked = walk_tree(raw["messages"])
    # The nesting agrees with the ids in this file (so either reading gives this tree).
    assert all(m["_parent"] in (None, m["parentMessageId"]) for m in walked)
    (conversation,) = parse_librechat(raw)
    check_against_raw(conversation, raw, walked)
    # What SOURCES.md says of this file, checked against the walk rather than assumed.
    assert (len(walked), branch_points(walked)) == (9, 2)


def test_the_flat_export_keeps_its_two_roots_and_its_regeneration() -> None:
    raw = load(FLAT)
    walked = walk_flat(raw["messages"])
    (conversation,) = parse_librechat(raw)
    check_against_raw(conversation, raw, walked)
    roots = [m.id for m in conversation.messages if m.parent_id is None]
    assert roots == [m["messageId"] for m in walked if m["_parent"] is None]
    assert len(roots) == 2
    assert branch_points(walked) == 1


def test_the_old_messages_tree_key_and_a_list_of_exports_are_read() -> None:
    tree, flat = load(TREE), load(FLAT)
    tree["messagesTree"] = tree.pop("messages")
    conversations = parse_librechat([tree, flat])
    assert [c.source_id for c in conversations] == [tree["conversationId"], flat["conversationId"]]
    assert [len(c.messages) for c in conversations] == [
        len(walk_tree(tree["messagesTree"])),
        len(flat["messages"]),
    ]


def test_a_flat_list_out_of_order_comes_out_parents_first_siblings_in_file_order() -> None:
    raw = load(FLAT)
    raw["messages"].reverse()
    (conversation,) = parse_librechat(raw)
    order = [m.id for m in conversation.messages]
    index = {m["messageId"]: i for i, m in enumerate(raw["messages"])}
    for message in conversation.messages:
        if message.parent_id is not None:
            assert order.index(message.parent_id) < order.index(message.id)
    siblings = [m.id for m in conversation.messages if m.parent_id is None]
    assert siblings == sorted(siblings, key=index.__getitem__)


def message(message_id: str, parent: str = NO_PARENT, **fields: Any) -> dict[str, Any]:
    return {"messageId": message_id, "parentMessageId": parent, "text": "", **fields}


def export(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"conversationId": "c1", "title": "t", "messages": list(messages), **fields}


def test_roles_statuses_errors_and_usage_follow_the_documented_rules() -> None:
    (conversation,) = parse_librechat(
        export(
            message("u", sender="User", text="hi"),
            message("a1", "u", sender="GPT-4", text="boom", error=True),
            message("a2", "u", isCreatedByUser=False, finish_reason="length", text="long"),
            message("a3", "u", tokenCount=7, promptTokens=5, text="ok", finish_reason="stop"),
            message("a4", "u", tokenCount=7, text="half a figure"),
        )
    )
    m = {x.id: x for x in conversation.messages}
    assert (m["u"].role, m["u"].content) == ("user", "hi")
    assert (m["a1"].role, m["a1"].status, m["a1"].error, m["a1"].content) == (
        "assistant",
        "error",
        "boom",
        "",
    )
    assert m["a2"].status == "length"
    assert m["a3"].usage == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert m["a3"].status == "complete"
    assert m["a4"].usage is None
    # No times anywhere: the conversation's are unknown, for the store to fill in.
    assert (conversation.created_at, conversation.updated_at) == (None, None)


def test_content_parts_give_the_text_and_the_reasoning() -> None:
    parts = [
        {"type": "think", "think": "hmm"},
        {"type": "text", "text": "Hello "},
        {"type": "tool_call", "tool_call": {"name": "x"}},
        {"type": "text", "text": {"value": "world", "annotations": []}},
    ]
    (conversation,) = parse_librechat(export(message("a", content=parts)))
    (answer,) = conversation.messages
    assert (answer.content, answer.reasoning) == ("Hello world", "hmm")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-28T18:08:55.014Z", 1716919735.014),
        ("2024-05-28T18:08:55", 1716919735.0),  # no zone: UTC
        ("2024-05-28T20:08:55+02:00", 1716919735.0),
        (1716919735, 1716919735.0),
        (1716919735014, 1716919735.014),  # milliseconds
        ({"$date": "2024-05-28T18:08:55.014Z"}, 1716919735.014),
        (None, None),
    ],
)
def test_times_in_every_spelling(value: object, expected: float | None) -> None:
    result = seconds(value, "$.t")
    assert result == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    "value", ["yesterday", "", -1, 1e300, True, [2024], {"$date": "no"}, "0001-01-01T00:00:00Z"]
)
def test_a_bad_time_is_refused_where_it_is(value: object) -> None:
    raw = export(message("a", createdAt=value))
    with pytest.raises(ImportFormatError) as caught:
        parse_librechat(raw)
    assert caught.value.where.startswith("$.messages[0].createdAt")


def test_a_nested_message_is_refused_by_its_nested_path() -> None:
    raw = load(TREE)
    raw["messages"][0]["children"][0]["children"][1]["text"] = 42
    with pytest.raises(ImportFormatError, match="text must be a string") as caught:
        parse_librechat(raw)
    assert caught.value.where == "$.messages[0].children[0].children[1].text"


@pytest.mark.parametrize(
    ("index", "key", "value", "where", "words"),
    [
        (2, "parentMessageId", "nowhere", "$.messages[2].parentMessageId", "not in"),
        (0, "parentMessageId", "@1", "$.messages[0].parentMessageId", "cycle"),
        (3, "parentMessageId", "@3", "$.messages[3].parentMessageId", "cycle"),
        (4, "messageId", "@0", "$.messages[4].messageId", "twice"),
        (1, "messageId", "", "$.messages[1].messageId", "non-empty"),
        (1, "isCreatedByUser", "yes", "$.messages[1].isCreatedByUser", "true or false"),
        (1, "tokenCount", True, "$.messages[1].tokenCount", "integer"),
        (1, "tokenCount", -3, "$.messages[1].tokenCount", "negative"),
        (1, "children", {}, "$.messages[1].children", "a list"),
        (1, "content", "text", "$.messages[1].content", "a list"),
        (None, "messages", {"a": 1}, "$.messages", "list"),
        (None, "conversationId", 5, "$.conversationId", "non-empty"),
        (None, "options", [], "$.options", "object"),
        (None, "title", ["x"], "$.title", "string"),
    ],
)
def test_malformed_flat_exports_are_refused_where_the_fault_is(
    index: int | None, key: str, value: object, where: str, words: str
) -> None:
    raw = load(FLAT)
    if isinstance(value, str) and value.startswith("@"):  # another message's id
        value = raw["messages"][int(value[1:])]["messageId"]
    (raw if index is None else raw["messages"][index])[key] = value
    with pytest.raises(ImportFormatError, match=words) as caught:
        parse_librechat(raw)
    assert caught.value.where == where
    assert caught.value.status_code == 400
    assert where in str(caught.value)


def test_a_message_that_is_not_an_object_is_refused() -> None:
    raw = load(FLAT)
    raw["messages"].append(7)
    with pytest.raises(ImportFormatError, match="must be an object") as caught:
        parse_librechat(raw)
    assert caught.value.where == "$.messages[5]"


def test_a_cycle_is_refused_at_a_message_on_it_not_at_one_hanging_from_it() -> None:
    # a -> b -> c -> b: a hangs from the cycle b <-> c; the refusal names b or c.
    raw = export(message("a", "b"), message("b", "c"), message("c", "b"))
    with pytest.raises(ImportFormatError, match="cycle") as caught:
        parse_librechat(raw)
    assert caught.value.where in ("$.messages[1].parentMessageId", "$.messages[2].parentMessageId")


def test_a_deep_tree_needs_no_recursion() -> None:
    # Deeper than Python's recursion limit, as nested objects would be if the walk recursed.
    depth = 3000
    chain = [message(str(i), str(i - 1) if i else NO_PARENT, text=str(i)) for i in range(depth)]
    (conversation,) = parse_librechat(export(*reversed(chain)))
    assert [m.id for m in conversation.messages] == [str(i) for i in range(depth)]
