"""ssechat.context: the context sent upstream, trimmed oldest-first, and offline titles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ssechat.context import DEFAULT_TITLE, build_context, make_title
from ssechat.providers.base import ChatMessage, ToolCall


@dataclass(frozen=True)
class Turn:
    """A message-like value: a role, a text, and an answer's stored tool calls (if any)."""

    role: str
    content: str
    tool_calls: Sequence[Mapping[str, Any]] | None = None


def turns(*pairs: tuple[str, str]) -> list[Turn]:
    return [Turn(role, content) for role, content in pairs]


# --- build_context ------------------------------------------------------------------------------


def test_everything_fits() -> None:
    branch = turns(("user", "Hi"), ("assistant", "Hello!"), ("user", "Joke?"))
    assert build_context("Be kind.", branch, budget_chars=1000) == [
        ChatMessage("system", "Be kind."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!"),
        ChatMessage("user", "Joke?"),
    ]


@dataclass(frozen=True)
class ThinkingTurn(Turn):
    """A stored answer as a reasoning model left it: its thinking kept beside its text."""

    reasoning: str | None = None


def test_reasoning_is_never_sent_upstream() -> None:
    branch = [
        Turn("user", "Hi"),
        ThinkingTurn("assistant", "Hello!", reasoning="The user greets me; greet back."),
        ThinkingTurn("assistant", "", reasoning="thinking, then nothing: left out"),
        Turn("user", "Joke?"),
    ]
    context = build_context(None, branch, budget_chars=1000)
    assert context == [
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!"),
        ChatMessage("user", "Joke?"),
    ]
    # The budget counts the answers' text, not their thinking.
    assert build_context(None, branch, budget_chars=len("HiHello!Joke?")) == context


def test_no_system_prompt_and_an_empty_one_are_left_out() -> None:
    branch = turns(("user", "Hi"))
    assert build_context(None, branch, budget_chars=100) == [ChatMessage("user", "Hi")]
    assert build_context("", branch, budget_chars=100) == [ChatMessage("user", "Hi")]


def test_empty_answers_are_skipped() -> None:
    branch = turns(("user", "a"), ("assistant", ""), ("user", "b"), ("assistant", "B"))
    assert [m.content for m in build_context(None, branch, budget_chars=100)] == ["a", "b", "B"]


def test_the_oldest_go_first() -> None:
    branch = turns(("user", "1111"), ("assistant", "2222"), ("user", "3333"), ("assistant", "44"))
    # The system prompt (4) and the newest (2) always; then "3333" fits in 12, "2222" does not.
    context = build_context("SSSS", branch, budget_chars=12)
    assert [m.content for m in context] == ["SSSS", "3333", "44"]
    context = build_context("SSSS", branch, budget_chars=18)
    assert [m.content for m in context] == ["SSSS", "1111", "2222", "3333", "44"]


def test_an_answer_whose_question_was_dropped_goes_too() -> None:
    branch = turns(("user", "q" * 10), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"))
    context = build_context(None, branch, budget_chars=6)
    assert [m.content for m in context] == ["q2", "a2"]
    # Nothing dropped: a branch that starts with an answer is sent as it is.
    greeting = turns(("assistant", "Welcome"), ("user", "Hi"))
    assert [m.role for m in build_context(None, greeting, budget_chars=100)] == [
        "assistant",
        "user",
    ]


def test_the_system_prompt_and_the_newest_are_kept_whatever_the_budget() -> None:
    branch = turns(("user", "old"), ("assistant", "older answer"), ("user", "x" * 50))
    assert build_context("S" * 30, branch, budget_chars=10) == [
        ChatMessage("system", "S" * 30),
        ChatMessage("user", "x" * 50),
    ]
    assert build_context(None, branch, budget_chars=0) == [ChatMessage("user", "x" * 50)]


def test_an_empty_branch_is_only_the_system_prompt() -> None:
    assert build_context("S", [], budget_chars=10) == [ChatMessage("system", "S")]
    assert build_context(None, [], budget_chars=10) == []
    assert build_context(None, turns(("assistant", "")), budget_chars=10) == []


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="role"):
        build_context(None, turns(("tool", "x")), budget_chars=10)
    with pytest.raises(ValueError, match="budget"):
        build_context(None, turns(("user", "x")), budget_chars=-1)


# --- tool steps ---------------------------------------------------------------------------------


def stored_call(
    call_id: str,
    offset: int | None,
    result: str | None,
    *,
    is_error: bool = False,
    name: str = "srv__echo",
    arguments: str = '{"text":"x"}',
) -> dict[str, Any]:
    """A ``tool_calls`` entry as the store keeps it on an answer."""
    return {
        "id": call_id,
        "name": name,
        "arguments": arguments,
        "server": "srv",
        "tool": name.partition("__")[2],
        "approval": "ask",
        "decision": "approved",
        "offset": offset,
        "result": None if result is None else {"content": result, "is_error": is_error},
    }


def test_an_answer_with_two_steps_is_sent_step_by_step() -> None:
    # "Lét me 🔎. " (10) -> calls a and b -> "Now the clock. " (15, ends at 25) -> call c ->
    # "Done." The offsets count code points: "é" is two bytes in UTF-8, "🔎" two UTF-16 units.
    content = "Lét me 🔎. Now the clock. Done."
    calls = [
        stored_call("a", 10, "A result", arguments='{"text":"a"}'),
        stored_call("b", 10, "boom: no such file", is_error=True, name="srv__fail"),
        stored_call("c", 25, "12:00", name="srv__clock", arguments="{}"),
    ]
    branch = [Turn("user", "Look it up"), Turn("assistant", content, calls), Turn("user", "Thanks")]
    assert build_context(None, branch, budget_chars=1000) == [
        ChatMessage("user", "Look it up"),
        ChatMessage(
            "assistant",
            "Lét me 🔎. ",
            (
                ToolCall("a", "srv__echo", '{"text":"a"}'),
                ToolCall("b", "srv__fail", '{"text":"x"}'),
            ),
        ),
        ChatMessage("tool", "A result", tool_call_id="a"),
        # An error result is what the model was told: its text, as any other result.
        ChatMessage("tool", "boom: no such file", tool_call_id="b"),
        ChatMessage("assistant", "Now the clock. ", (ToolCall("c", "srv__clock", "{}"),)),
        ChatMessage("tool", "12:00", tool_call_id="c"),
        ChatMessage("assistant", "Done."),
        ChatMessage("user", "Thanks"),
    ]


def test_a_call_without_a_result_is_left_out_and_its_text_joins_the_next_step() -> None:
    calls = [
        stored_call("a", 3, None),  # denied, or cut off before its result was stored
        stored_call("b", 6, "B"),
        stored_call("c", 9, None),
    ]
    branch = [Turn("user", "q"), Turn("assistant", "aaabbbccc", calls)]
    assert build_context(None, branch, budget_chars=100) == [
        ChatMessage("user", "q"),
        ChatMessage("assistant", "aaabbb", (ToolCall("b", "srv__echo", '{"text":"x"}'),)),
        ChatMessage("tool", "B", tool_call_id="b"),
        ChatMessage("assistant", "ccc"),
    ]


def test_calls_at_the_start_and_an_answer_of_calls_only() -> None:
    calls = [stored_call("a", 0, "first"), stored_call("b", 0, "second")]
    branch = [Turn("user", "q"), Turn("assistant", "", calls), Turn("user", "next")]
    context = build_context(None, branch, budget_chars=100)
    assert context[1] == ChatMessage(
        "assistant",
        "",
        (ToolCall("a", "srv__echo", '{"text":"x"}'), ToolCall("b", "srv__echo", '{"text":"x"}')),
    )
    assert [(m.role, m.content, m.tool_call_id) for m in context[2:]] == [
        ("tool", "first", "a"),
        ("tool", "second", "b"),
        ("user", "next", None),
    ]


def test_older_calls_without_results_or_offsets_send_the_plain_text() -> None:
    # What the reasoning issue stored: {id, name, arguments} only; nothing answered them.
    old = [{"id": "call_1", "name": "get_weather", "arguments": "{}"}]
    branch = [Turn("user", "q"), Turn("assistant", "I would call a tool.", old)]
    assert build_context(None, branch, budget_chars=100) == [
        ChatMessage("user", "q"),
        ChatMessage("assistant", "I would call a tool."),
    ]
    # With no text either, the answer is left out like any empty one.
    branch = [Turn("user", "q"), Turn("assistant", "", old), Turn("user", "again")]
    assert [m.content for m in build_context(None, branch, budget_chars=100)] == ["q", "again"]


def test_a_result_without_an_offset_sits_after_the_text() -> None:
    branch = [Turn("user", "q"), Turn("assistant", "text", [stored_call("a", None, "R")])]
    assert [(m.role, m.content) for m in build_context(None, branch, budget_chars=100)] == [
        ("user", "q"),
        ("assistant", "text"),
        ("tool", "R"),
    ]
    # Calls that share an offset beyond the text (a bad record) are still one step.
    calls = [stored_call("a", 99, "A"), stored_call("b", 99, "B")]
    context = build_context(
        None, [Turn("user", "q"), Turn("assistant", "t", calls)], budget_chars=99
    )
    assert [(m.content, len(m.tool_calls), m.tool_call_id) for m in context[1:]] == [
        ("t", 2, None),
        ("A", 0, "a"),
        ("B", 0, "b"),
    ]


def test_trimming_keeps_each_step_whole_and_counts_arguments_and_results() -> None:
    calls = [
        stored_call("a", 2, "R" * 10, arguments="{}"),  # step 1: "s1" + "{}" + 10 = 14
        stored_call("b", 4, "r", arguments="{}"),  # step 2: "s2" + "{}" + 1 = 5
    ]
    branch = [
        Turn("user", "q1"),
        Turn("assistant", "s1s2end", calls),  # then the final slice "end": 3
        Turn("user", "q2"),
    ]
    whole = [
        ChatMessage("user", "q1"),
        ChatMessage("assistant", "s1", (ToolCall("a", "srv__echo", "{}"),)),
        ChatMessage("tool", "R" * 10, tool_call_id="a"),
        ChatMessage("assistant", "s2", (ToolCall("b", "srv__echo", "{}"),)),
        ChatMessage("tool", "r", tool_call_id="b"),
        ChatMessage("assistant", "end"),
        ChatMessage("user", "q2"),
    ]
    # Everything: 2 + 14 + 5 + 3 + 2 = 26.
    assert build_context(None, branch, budget_chars=26) == whole
    # One less leaves out q1, and then the steps that would begin the context with an answer.
    assert build_context(None, branch, budget_chars=25) == [ChatMessage("user", "q2")]
    for budget in range(27):
        got = build_context(None, branch, budget_chars=budget)
        # What is kept is a tail of the whole, starting with a question, in which every tool
        # message follows the assistant message that made its call: no step is ever split.
        assert got == whole[len(whole) - len(got) :], budget
        assert got[0].role == "user", budget
        open_calls: set[str] = set()
        for message in got:
            if message.role == "tool":
                assert message.tool_call_id in open_calls, budget
                open_calls.discard(message.tool_call_id)
            else:
                assert not open_calls, budget  # every call answered before anything else
                open_calls = {c.id for c in message.tool_calls}


def test_arguments_and_results_count_against_the_budget() -> None:
    call = stored_call("a", 0, "x" * 40, arguments='{"long":"' + "y" * 40 + '"}')
    branch = [Turn("user", "old"), Turn("assistant", "", [call]), Turn("user", "new")]
    # The text alone (3 + 0 + 3) would fit 50; with the call's 90 characters it does not.
    assert build_context(None, branch, budget_chars=50) == [ChatMessage("user", "new")]
    assert len(build_context(None, branch, budget_chars=200)) == 4


@given(
    content=st.text(alphabet="ab🔎", max_size=10),
    steps=st.lists(st.tuples(st.integers(min_value=-2, max_value=14), st.booleans()), max_size=6),
)
def test_tool_step_properties(content: str, steps: list[tuple[int, bool]]) -> None:
    # Offsets as stored are non-decreasing; out-of-range ones must not lose or repeat text.
    calls = [
        stored_call(f"c{i}", offset, f"r{i}" if answered else None)
        for i, (offset, answered) in enumerate(sorted(steps))
    ]
    context = build_context(
        None, [Turn("user", "q"), Turn("assistant", content, calls)], budget_chars=10**6
    )
    answer = context[1:]
    # The answer's text is all there, once, in order, however its calls were cut into steps.
    assert "".join(m.content for m in answer if m.role == "assistant") == content
    # Only the answered calls are sent, each once, each result right after its step.
    sent = [c.id for m in answer for c in m.tool_calls]
    assert sent == [c["id"] for c in calls if c["result"] is not None]
    results = [m.tool_call_id for m in answer if m.role == "tool"]
    assert results == sent
    for i, message in enumerate(answer):
        if message.tool_calls:
            ids = [c.id for c in message.tool_calls]
            after = answer[i + 1 : i + 1 + len(ids)]
            assert [m.tool_call_id for m in after] == ids


roles = st.sampled_from(["user", "assistant", "system"])
branches = st.lists(st.builds(Turn, roles, st.text(alphabet="ab \n", max_size=12)), max_size=12)


@given(
    system_prompt=st.one_of(st.none(), st.text(alphabet="s", max_size=10)),
    branch=branches,
    budget=st.integers(min_value=0, max_value=60),
)
@example(system_prompt="ss", branch=turns(("user", "aaaa"), ("assistant", "bb")), budget=1)
def test_context_properties(system_prompt: str | None, branch: list[Turn], budget: int) -> None:
    context = build_context(system_prompt, branch, budget_chars=budget)
    kept_turns = [t for t in branch if t.role != "assistant" or t.content]
    head = [ChatMessage("system", system_prompt)] if system_prompt else []

    # The system prompt comes first, then a run of the newest turns, in order.
    assert context[: len(head)] == head
    body = context[len(head) :]
    start = len(kept_turns) - len(body)
    assert body == [ChatMessage(t.role, t.content) for t in kept_turns[start:]]
    if kept_turns:
        assert body, "the newest message is always kept"

    def size(first: int) -> int:
        return len(system_prompt or "") + sum(len(t.content) for t in kept_turns[first:])

    # Within the budget, unless only the system prompt and the newest message are left.
    assert size(start) <= budget or len(body) <= 1
    # Nothing older could have been kept as well, except an answer without its question.
    for older in range(start):
        assert size(older) > budget or kept_turns[older].role == "assistant"
    if start > 0 and len(body) > 1:
        assert body[0].role != "assistant"


# --- make_title -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_text", "title"),
    [
        ("How do I bake bread?", "How do I bake bread?"),
        ("  \n\n  first   line  \nsecond line", "first line"),
        ("# A **bold** _plan_", "A bold plan"),
        ("> quoted `code` and ~~struck~~ text", "quoted code and struck text"),
        ("- [ ] a task\n- another", "a task"),
        ("1. numbered step", "numbered step"),
        ("See [the docs](https://example.com/x) ![img](a.png)", "See the docs img"),
        ("```python\nprint('hi')\n```", "print('hi')"),
        ("---\n\nAfter a rule", "After a rule"),
        ("snake_case stays, 2*3 too", "snake_case stays, 2*3 too"),
    ],
)
def test_title_from_the_question(user_text: str, title: str) -> None:
    assert make_title(user_text) == title


def test_a_long_question_is_cut_at_a_word() -> None:
    text = "Please explain the difference between processes and threads in detail"
    title = make_title(text, max_chars=30)
    assert title == "Please explain the difference…"
    assert len(title) <= 30
    assert make_title("x" * 100, max_chars=10) == "x" * 9 + "…"
    # No comma or space is left before the ellipsis.
    assert make_title("alpha, beta gamma delta", max_chars=12) == "alpha, beta…"
    assert make_title("alphabet, beta gamma delta", max_chars=12) == "alphabet…"


def test_falls_back_to_the_answer_then_to_new_chat() -> None:
    assert make_title("", "## Paris is the capital\nMore text") == "Paris is the capital"
    assert make_title("```\n```", "   ") == DEFAULT_TITLE
    assert make_title("") == "New chat"


def test_max_chars_must_leave_room() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        make_title("hello", max_chars=1)


@given(
    user_text=st.text(max_size=200),
    answer_text=st.text(max_size=50),
    max_chars=st.integers(min_value=2, max_value=60),
)
def test_title_properties(user_text: str, answer_text: str, max_chars: int) -> None:
    title = make_title(user_text, answer_text, max_chars=max_chars)
    assert 0 < len(title) <= max_chars
    assert title == title.strip()
    assert title.splitlines() == [title]
    assert "  " not in title


@given(words=st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=8), min_size=1))
def test_plain_words_are_kept_or_cut_at_a_word(words: list[str]) -> None:
    text = " ".join(words)
    title = make_title(text, max_chars=20)
    if len(text) <= 20:
        assert title == text
    else:
        assert title.endswith("…")
        assert text.startswith(title[:-1])
        # At the end of a word, unless the last word boundary would waste half the room.
        assert text[len(title) - 1] == " " or " " not in title[10:]


def test_a_cut_default_title_has_no_trailing_space() -> None:
    # Found by test_title_properties: "New chat"[:4] is "New ".
    assert make_title("", max_chars=4) == "New"
