"""kit.ask / ask_async / stream / astream as people call them: conversations, system prompts,
options and JSON, offline on the simulated provider; bad input refused before anything is sent.
"""

from __future__ import annotations

import asyncio

import pytest

from ims_kit.errors import InvalidInputError
from ims_kit.records import ModelSpec

CHAT = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
]


def usage_rows(kit) -> int:
    return kit.db.execute("SELECT count(*) FROM usage").fetchone()[0]


CALLERS = ["ask", "ask_async", "stream", "astream"]


def call(kit, how: str, *args, **kw):
    """The Answer of one call through ``how``."""
    if how == "ask":
        return kit.ask(*args, **kw)
    if how == "ask_async":
        return asyncio.run(kit.ask_async(*args, **kw))
    if how == "stream":
        return kit.stream(*args, **kw).answer

    async def run():
        return await kit.astream(*args, **kw).result()

    return asyncio.run(run())


@pytest.mark.parametrize("how", CALLERS)
def test_a_conversation_is_counted_whole(seeded, how):
    """messages=[...] with system=: every turn is counted (more tokens than the last alone)."""
    one = call(seeded, how, "What is 2+2?", model="gpt-4o-mini", provider="simulated")
    whole = call(
        seeded, how, messages=CHAT, system="You are terse.", model="gpt-4o-mini",
        provider="simulated",
    )  # fmt: skip
    assert whole.tokens_in > one.tokens_in
    assert whole.text == one.text == "4"  # the simulator answers the latest user turn


@pytest.mark.parametrize("how", CALLERS)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"messages": []}, "no user turn"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "unknown role 'robot'"),
        ({"messages": [{"role": "user", "content": 5}]}, "must be a string, got int"),
        ({"prompt": "x", "messages": CHAT}, "not both"),
        ({"prompt": "x", "temperature": 3}, "temperature must be from 0 to 2"),
        ({"prompt": "x", "top_p": "high"}, "top_p must be a number"),
        ({"prompt": "x", "stop": [""]}, "stop must be a non-empty string"),
        ({"prompt": "x", "json_schema": {"type": "objekt"}}, "malformed"),
        ({"prompt": "x", "tempreature": 0.2}, "unknown argument 'tempreature'"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(seeded, how, kwargs, message):
    """Each bad argument is an InvalidInputError naming it, and no call is made or logged."""
    kwargs = dict(kwargs)  # the parameters are shared between the four callers
    args = (kwargs.pop("prompt"),) if "prompt" in kwargs else ()
    with pytest.raises(InvalidInputError, match=message):
        call(seeded, how, *args, provider="simulated", **kwargs)
    assert usage_rows(seeded) == 0 and seeded.provider("simulated").calls == 0


def test_the_selector_sizes_the_whole_conversation(seeded):
    """recommend() on messages counts every turn: a long history needs a larger window."""
    history = [{"role": "user", "content": "word " * 30_000}, *CHAT]
    rec = seeded.recommend(messages=history)
    assert rec.request.prompt_tokens > 30_000
    assert rec.model.context_window > rec.request.prompt_tokens


def test_an_overflowing_conversation_keeps_the_system_prompt_and_the_latest_turns(seeded):
    """Context overflow on a small model: the oldest turns are cut, the system prompt and the
    last user turn are sent, and the answer says it was truncated."""
    seeded.registry.register(
        ModelSpec(model_id="tiny", vendor="V", provider="simulated", context_window=2_000)
    )
    history = [
        {"role": "user", "content": "old " * 3_000},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    seeded.usage.store_text = True  # to read what was sent
    answer = seeded.ask(messages=history, system="Be exact.", model="tiny", provider="simulated")
    assert answer.truncated and answer.text == "4"
    assert answer.attempts[0].error_kind == "CONTEXT_OVERFLOW"
    (sent,) = seeded.db.execute("SELECT prompt FROM usage WHERE success = 1").fetchone()
    assert sent.startswith("Be exact.") and sent.endswith("What is 2+2?")
    assert "old" not in sent  # the oldest turns went first


def test_json_output_offline_is_valid_for_the_schema(seeded):
    """The simulator answers valid JSON for a schema; the Answer carries it parsed."""
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18}},
        "required": ["name", "age"],
    }
    answer = seeded.ask("Extract: Ann, 31", json_schema=schema, provider="simulated")
    assert set(answer.data) == {"name", "age"} and answer.data["age"] >= 18


def test_an_option_a_model_refuses_is_dropped_offline_too(seeded):
    """gpt-5-mini's row refuses temperature: the simulated call drops it and says why."""
    answer = seeded.ask("hi", model="gpt-5-mini", temperature=0.2, provider="simulated")
    assert list(answer.dropped_options) == ["temperature"]
    assert seeded.registry.lookup("gpt-5-mini").unsupported_options == (
        "temperature",
        "top_p",
        "stop",
    )


def test_a_simulated_stream_breaks_mid_way_when_asked(seeded):
    """inject(..., after_pieces=2): two pieces, then StreamInterrupted with them."""
    from ims_kit.errors import StreamInterrupted

    seeded.provider("simulated").inject("gpt-4o-mini", "overload", after_pieces=2)
    s = seeded.stream("Write an essay", model="gpt-4o-mini", provider="simulated")
    got = []
    with pytest.raises(StreamInterrupted) as info:
        for piece in s:
            got.append(piece)
    assert len(got) == 2 and info.value.text == "".join(got)
    row = seeded.db.execute("SELECT success, error_kind, tokens_out FROM usage").fetchone()
    assert row[0] == 0 and row[1] == "OVERLOAD" and row[2] > 0


def test_a_simulated_stream_reports_its_simulated_time_to_first_token(seeded):
    """The simulator's TTFT is a share of its simulated latency, stored on the row."""
    answer = seeded.stream("Write a haiku", model="gpt-4o-mini", provider="simulated").answer
    assert 0 < answer.ttft_ms < answer.latency_ms
    (stored,) = seeded.db.execute("SELECT ttft_ms FROM usage").fetchone()
    assert stored == pytest.approx(answer.ttft_ms)
    frame = seeded.usage.ttft_percentiles()
    assert frame.loc[0, "model"] == "gpt-4o-mini" and frame.loc[0, "streams"] == 1
