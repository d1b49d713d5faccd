"""What one call sends, built from ask's arguments and checked before anything is sent; and
how a conversation is cut to fit a window."""

from __future__ import annotations

import pytest

from ims_kit import tokens
from ims_kit.errors import InvalidInputError
from ims_kit.prompts import Message, as_prompt, build_prompt

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What did I just say?"},
]


def test_a_prompt_is_one_user_turn_with_options():
    """A string prompt is one user turn; options and the schema ride along."""
    p = build_prompt("Summarise this", system="Be brief.", temperature=0.2, max_tokens=300,
                     stop="END", seed=7, json_schema={"type": "object"})  # fmt: skip
    assert p.messages == (Message("user", "Summarise this"),) and p.system == "Be brief."
    assert p.options.given() == {"temperature": 0.2, "max_tokens": 300, "stop": ("END",), "seed": 7}
    assert p.json_schema == {"type": "object"} and p.last_user == "Summarise this"


def test_a_conversation_keeps_its_turns_and_its_system_message_is_the_system_prompt():
    """OpenAI-style messages: the leading system message becomes Prompt.system."""
    p = build_prompt(messages=CONVERSATION)
    assert p.system == "You are terse."
    assert [m.role for m in p.messages] == ["user", "assistant", "user"]
    assert p.text == "You are terse.\nHi\nHello!\nWhat did I just say?"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "hi", "messages": CONVERSATION}, "give prompt or messages, not both"),
        ({}, "give a prompt"),
        ({"prompt": "  "}, "the prompt is empty"),
        ({"prompt": 42}, "prompt must be a string"),
        ({"messages": []}, "messages has no user turn"),
        ({"messages": "hi"}, "messages must be a list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "unknown role 'robot'"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "must be a string"),
        ({"messages": [{"role": "user"}]}, "must have exactly 'role' and 'content'"),
        ({"messages": [{"role": "user", "content": "x", "id": 1}]}, "unexpected: 'id'"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
         "must end with a user turn"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"},
                       {"role": "user", "content": "z"}]}, "must come before"),
        ({"messages": CONVERSATION, "system": "twice"}, "give the system prompt once"),
        ({"prompt": "hi", "system": ""}, "system must be a non-empty string"),
        ({"prompt": "hi", "json_schema": "object"}, "json_schema must be a JSON Schema dict"),
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens must be a whole number"),
        ({"prompt": "hi", "max_tokens": 2.5}, "max_tokens must be a whole number"),
        ({"prompt": "hi", "temperature": -1}, "temperature must be from 0 to 2"),
        ({"prompt": "hi", "top_p": 1.5}, "top_p must be from 0 to 1"),
        ({"prompt": "hi", "temperature": float("nan")}, "temperature must be a number"),
        ({"prompt": "hi", "stop": [""]}, "stop must be a non-empty string"),
        ({"prompt": "hi", "stop": ["s"] * 17}, "at most 16 stop sequences"),
        ({"prompt": "hi", "seed": "7"}, "seed must be a whole number"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_parameter(kwargs, message):
    """Every mistake is an InvalidInputError that says which argument and why."""
    with pytest.raises(InvalidInputError, match=message) as err:
        build_prompt(caller="ask", **kwargs)
    assert str(err.value).startswith("ask()") or "prompt is empty" in str(err.value)


def test_a_string_given_to_a_provider_is_one_turn():
    """complete(spec, "text", max_tokens=5) means one user turn with that cap."""
    p = as_prompt("hi", max_tokens=5, system="s")
    assert (p.messages[0].content, p.options.max_tokens, p.system) == ("hi", 5, "s")
    assert as_prompt(p) is p


def test_a_long_conversation_loses_its_oldest_turns_first():
    """Cut to fit: the system prompt and the latest turns stay; it still starts with a user."""
    turns = []
    for i in range(20):
        turns += [{"role": "user", "content": f"question {i} " + "word " * 200},
                  {"role": "assistant", "content": f"answer {i} " + "word " * 200}]  # fmt: skip
    turns.append({"role": "user", "content": "the last question?"})
    p = build_prompt(messages=turns, system="Stay on topic.")
    cut = tokens.truncate_prompt(p, 1_000, "gpt-4o")
    assert tokens.count_prompt(cut, "gpt-4o") <= 1_000
    assert cut.system == "Stay on topic." and cut.messages[-1].content == "the last question?"
    assert cut.messages[0].role == "user" and len(cut.messages) < len(p.messages)
    assert cut.messages == p.messages[-len(cut.messages) :]  # whole turns, the latest ones


def test_a_single_turn_too_long_keeps_its_start_and_end():
    """One turn alone over the budget is cut inside, its instruction and question kept."""
    text = "Start of the instructions. " + "filler " * 5_000 + "The question?"
    cut = tokens.truncate_prompt(build_prompt(text), 500, "gpt-4o")
    (turn,) = cut.messages
    assert turn.content.startswith("Start of the instructions.")
    assert turn.content.endswith("The question?") and tokens.count_prompt(cut, "gpt-4o") <= 500
