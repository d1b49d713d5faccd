"""What each wire format carries for a conversation, a system prompt, every generation option
and a JSON Schema: the request bodies as the loopback server received them."""

from __future__ import annotations

import json

import pytest
from vendor_specs import point_at, spec_for

from ims_kit.prompts import build_prompt
from ims_kit.providers import get_provider

TURNS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What did I just say?"},
]
OPTIONS = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 300, "stop": ["END"], "seed": 7}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.fixture
def sent(vendor, monkeypatch):
    """Send a prompt through an adapter; the JSON body the server received."""
    point_at(vendor, monkeypatch)
    vendor.reply_text = '{"name": "Ann", "age": 31}'
    made = []

    def send(name: str, prompt, *, spec=None, compatible=False):
        provider = get_provider("openai_compatible" if compatible else name)
        made.append(provider)
        spec = spec or spec_for(name)
        if compatible:
            monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", vendor.url + "/v1")
        provider.complete(spec, prompt)
        return vendor.requests[-1].json

    yield send
    for provider in made:
        provider.close()


def test_openai_conversation_options_and_schema(sent):
    """OpenAI: system first, the turns as they are, max_completion_tokens, every option by its
    own name, a closed schema as strict structured output."""
    body = sent("openai", build_prompt(messages=TURNS, json_schema=PERSON, **OPTIONS))
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What did I just say?"},
    ]
    assert body["max_completion_tokens"] == 300 and "max_tokens" not in body
    assert (body["temperature"], body["top_p"], body["seed"], body["stop"]) == (
        0.2,
        0.9,
        7,
        ["END"],
    )
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": PERSON, "strict": True},
    }


def test_openai_reasoning_models_get_a_developer_message(sent):
    """A model the registry marks as reasoning takes the system prompt as role developer."""
    spec = spec_for("openai", capabilities=("reasoning",))
    body = sent("openai", build_prompt("Hi", system="Be brief."), spec=spec)
    assert body["messages"][0] == {"role": "developer", "content": "Be brief."}


def test_openai_open_schema_is_sent_without_strict(sent):
    """A schema strict mode would refuse (an open object) goes as guidance, strict false."""
    open_schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    body = sent("openai", build_prompt("Extract", json_schema=open_schema))
    assert body["response_format"]["json_schema"]["strict"] is False


def test_openai_compatible_servers_get_max_tokens(sent):
    """Local servers know max_tokens, not max_completion_tokens."""
    spec = spec_for("openai", provider="openai_compatible")
    body = sent("openai", build_prompt("Hi", max_tokens=50), spec=spec, compatible=True)
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body


def test_anthropic_conversation_options_and_schema(sent):
    """Anthropic: a top-level system, alternating turns, stop_sequences, structured output for
    a closed schema on a model that has it."""
    spec = spec_for("anthropic", capabilities=("json_mode",))
    options = {k: v for k, v in OPTIONS.items() if k not in ("seed", "top_p")}
    body = sent("anthropic", build_prompt(messages=TURNS, json_schema=PERSON, **options), spec=spec)
    assert body["system"] == "You are terse."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["stop_sequences"] == ["END"] and "stop" not in body
    assert (body["max_tokens"], body["temperature"]) == (300, 0.2)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": PERSON}}
    assert "tools" not in body


def test_anthropic_joins_consecutive_turns_of_one_role(sent):
    """Messages alternates user and assistant: two user turns in a row become one."""
    turns = [{"role": "user", "content": "First."}, {"role": "user", "content": "Second."}]
    body = sent("anthropic", build_prompt(messages=turns))
    assert body["messages"] == [{"role": "user", "content": "First.\n\nSecond."}]


def test_anthropic_without_structured_outputs_forces_a_tool(sent):
    """A model without json_mode (or an open schema) answers through a forced tool; the
    answer's text is the tool's input as JSON."""
    body = sent("anthropic", build_prompt("Extract: Ann, 31", json_schema=PERSON))
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}
    assert body["tools"][0]["input_schema"] == PERSON and "output_config" not in body


def test_anthropic_answer_from_a_forced_tool(vendor, monkeypatch):
    """The tool_use block's input is the answer's text (JSON), not the empty text blocks."""
    point_at(vendor, monkeypatch)
    vendor.reply_text = '{"name": "Ann", "age": 31}'
    with get_provider("anthropic") as provider:
        done = provider.complete(spec_for("anthropic"), build_prompt("x", json_schema=PERSON))
    assert json.loads(done.text) == {"name": "Ann", "age": 31}


def test_anthropic_refuses_seed_and_top_p_beside_temperature():
    """What Messages never takes is said, so recovery drops it before sending."""
    provider = get_provider("anthropic")
    both = build_prompt("Hi", temperature=0.5, top_p=0.9, seed=1)
    refused = provider.refused_options(spec_for("anthropic"), both)
    assert set(refused) == {"seed", "top_p"}
    alone = provider.refused_options(spec_for("anthropic"), build_prompt("Hi", top_p=0.9))
    assert "top_p" not in alone


def test_gemini_conversation_options_and_schema(sent):
    """Gemini: systemInstruction, contents with roles user and model, generationConfig by its
    names, responseMimeType + responseJsonSchema."""
    body = sent("gemini", build_prompt(messages=TURNS, json_schema=PERSON, **OPTIONS))
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][1]["parts"] == [{"text": "Hello!"}]
    assert body["generationConfig"] == {
        "maxOutputTokens": 300,
        "temperature": 0.2,
        "topP": 0.9,
        "seed": 7,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": PERSON,
    }


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini"])
def test_no_option_no_field(name, sent):
    """Options left unset are not sent (the model's defaults apply)."""
    body = sent(name, build_prompt("Hi"))
    fields = {"temperature", "top_p", "seed", "stop", "stop_sequences", "response_format"}
    assert not fields & set(body) and "generationConfig" not in body


def test_the_registry_marks_what_a_model_refuses():
    """A row's unsupported_options are refused by every adapter, with the reason."""
    spec = spec_for("openai", unsupported_options=("temperature", "stop"))
    prompt = build_prompt("Hi", temperature=0.3)
    for name in ("openai", "simulated"):
        refused = get_provider(name).refused_options(spec, prompt)
        assert set(refused) == {"temperature", "stop"}
        assert "does not take temperature" in refused["temperature"]
