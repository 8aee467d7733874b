"""ssechat.context: the context sent upstream, trimmed oldest-first, and offline titles."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ssechat.context import DEFAULT_TITLE, build_context, make_title
from ssechat.providers.base import ChatMessage


@dataclass(frozen=True)
class Turn:
    """A message-like value: the context needs only a role and a text."""

    role: str
    content: str


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
