"""`ims recommend` and `ims ask`: choosing and calling models from the shell."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ims_kit.cli import cli


def test_cli_recommend_json(seeded):
    """`ims recommend --strategy performance --min-context 50000 --json` prints the ranking."""
    args = ["--prompt", "hi", "--strategy", "performance", "--min-context", "50000", "--json"]
    result = CliRunner().invoke(cli, ["recommend", *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["strategy"] == "performance" and data["candidates"][0]["rank"] == 1
    qualities = [seeded.registry.lookup(c["model_id"]).quality for c in data["candidates"]]
    assert qualities[0] == max(qualities)
    assert all(e["excluded_by"] for e in data["excluded"])


def test_cli_recommend_reads_strategy_from_env_and_filters_vendor(seeded):
    """IMS_STRATEGY=balanced with --vendor Anthropic recommends an Anthropic model."""
    result = CliRunner().invoke(
        cli,
        ["recommend", "--prompt", "Refactor this function ...", "--vendor", "Anthropic", "--json"],
        env={"IMS_STRATEGY": "balanced"},
    )
    data = json.loads(result.output)
    assert data["strategy"] == "balanced"
    assert seeded.registry.lookup(data["model_id"]).vendor == "Anthropic"


def test_cli_recommend_without_a_prompt_is_an_error(seeded):
    """`ims recommend` with no prompt exits non-zero saying how to give one."""
    result = CliRunner().invoke(cli, ["recommend"])
    assert result.exit_code == 2 and "--prompt TEXT or --prompt-file FILE" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategy", "cheapest"], "cheapest"),
        (["--vendor", "Acme"], "unknown vendor 'Acme'"),
        (["--capability", "telepathy"], "unknown capability 'telepathy'"),
        (["--min-context", "-3"], "non-negative"),
        (["--min-context", "ten"], "ten"),
        (["--min-context", "5000000"], "no model satisfies"),
    ],
)
def test_cli_recommend_bad_input_is_one_line(seeded, args, message):
    """Bad options exit non-zero with a short message and no traceback."""
    result = CliRunner().invoke(cli, ["recommend", "--prompt", "hi", *args])
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_ask_offline_with_the_simulated_provider(run):
    """`ims ask --provider simulated --json` answers offline and logs a usage row."""
    run("init")
    data = json.loads(run("ask", "What is 2+2?", "--provider", "simulated", "--json").output)
    assert data["text"] == "4" and data["provider"] == "simulated"
    figures = json.loads(run("metrics", "--json").output)
    assert figures["total_executions"] == 1 and figures["simulated_executions"] == 1
    assert figures["total_cost_usd"] == 0.0 and figures["simulated_cost_usd"] > 0


def test_ask_a_real_model_without_its_key_names_the_variable(run):
    """A real provider without a key is one line naming the variable, never simulated data."""
    run("init")
    result = CliRunner().invoke(cli, ["ask", "hello", "--model", "gpt-4o-mini"])
    assert result.exit_code == 1 and "OPENAI_API_KEY" in result.output
    assert result.output.count("\n") == 1


def test_missing_keys_of_every_candidate_are_all_named(run):
    """A model and its fallback both without keys: the one line names both variables."""
    run("init")
    result = CliRunner().invoke(
        cli, ["ask", "hello", "--model", "claude-haiku-4-5", "--fallback", "gemini-2.5-flash"]
    )
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "ANTHROPIC_API_KEY" in result.output and "GEMINI_API_KEY" in result.output


def test_ask_announces_a_fallback_on_stderr(run, monkeypatch):
    """Switching models is never silent: stderr says which model failed and why."""
    from ims_kit.providers.simulated import SimulatedProvider

    run("init")
    sim = SimulatedProvider()
    sim.fail_always("gpt-4o-mini", "OVERLOAD")
    monkeypatch.setattr("ims_kit.kit.Kit.provider", lambda self, name: sim)
    result = CliRunner().invoke(
        cli,
        ["ask", "hi", "--model", "gpt-4o-mini", "--fallback", "gpt-4o", "--provider", "simulated"],
    )
    assert result.exit_code == 0
    assert "gpt-4o-mini: OVERLOAD: fallback" in result.stderr
    assert "ims: gpt-4o (simulated)" in result.stderr


def test_a_binary_prompt_file_is_one_line(run, tmp_path):
    """A prompt file that is not text is refused in one line."""
    run("init")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(cli, ["recommend", "--prompt-file", str(binary)])
    assert result.exit_code == 1 and "UTF-8" in result.output
    assert result.output.count("\n") == 1


# -- the generation options, JSON output and streaming --------------------------------------------
@pytest.fixture
def on_server(run, vendor, monkeypatch, db_path):
    """`ims init`, then a model `local` on the loopback server (OpenAI's wire), keyed."""
    import ims_kit
    from ims_kit.records import ModelSpec

    run("init")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-cli-0123456789")
    with ims_kit.open(db_path) as kit:
        kit.registry.register(
            ModelSpec(
                model_id="local",
                vendor="OpenAI",
                provider="openai",
                base_url=f"{vendor.url}/v1",
                context_window=100_000,
                cost_per_mil_in=1.0,
                cost_per_mil_out=2.0,
            )
        )
    return vendor


def test_ask_sends_the_system_prompt_and_every_option(run, on_server):
    """--system, --temperature, --top-p, --max-tokens, --stop (twice), --seed reach the body."""
    result = run(
        "ask", "Write a haiku", "--model", "local", "--system", "You are terse.",
        "--temperature", "0.2", "--top-p", "0.9", "--max-tokens", "200",
        "--stop", "END", "--stop", "STOP", "--seed", "7",
    )  # fmt: skip
    assert result.exit_code == 0 and result.stdout == "echo: Write a haiku\n"
    body = on_server.requests[-1].json
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (0.2, 0.9, 200)
    assert (body["stop"], body["seed"]) == (["END", "STOP"], 7)


def test_ask_json_schema_prints_the_validated_json(run, on_server, tmp_path):
    """--json-schema FILE asks for structured output and prints the parsed JSON."""
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name"]}))
    on_server.reply_text = '{"name": "Ann", "age": 31}'
    result = run("ask", "Extract: Ann, 31", "--model", "local", "--json-schema", str(schema))
    assert result.exit_code == 0 and json.loads(result.stdout) == {"name": "Ann", "age": 31}
    assert on_server.requests[-1].json["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not JSON"), ("[1, 2]", "a JSON Schema is an object"), (None, "cannot read")],
)
def test_a_bad_schema_file_is_one_line(run, content, message, tmp_path):
    """A schema file that is unreadable, not JSON or not an object: one line, exit 1."""
    run("init")
    path = tmp_path / "schema.json"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(
        cli, ["ask", "x", "--provider", "simulated", "--json-schema", str(path)]
    )
    assert result.exit_code == 1 and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_ask_stream_prints_pieces_and_the_time_to_first_token(run, on_server):
    """--stream prints the answer as it arrives and the accounting line with the TTFT."""
    result = run("ask", "hello there", "--model", "local", "--stream")
    assert result.exit_code == 0 and result.stdout == "echo: hello there\n"
    assert "first token" in result.stderr and on_server.requests[-1].json["stream"] is True


def test_a_stream_cut_mid_way_is_one_line_after_the_text_so_far(run, on_server):
    """The stream fails after two pieces: they were printed, then one error line, exit 1."""
    import vendor_server as vs

    on_server.script(vs.stream_cut(after=2))
    result = CliRunner().invoke(cli, ["ask", "hello there you", "--model", "local", "--stream"])
    assert result.exit_code == 1 and result.stdout == "echo: hello \n"
    assert "the stream failed after" in result.stderr and "Traceback" not in result.output


def test_an_option_the_model_refuses_is_announced(run):
    """gpt-5-mini refuses temperature: it is not sent, and stderr says so."""
    run("init")
    result = run("ask", "hi", "--model", "gpt-5-mini", "--provider", "simulated",
                 "--temperature", "0.2")  # fmt: skip
    assert "gpt-5-mini: temperature not sent: " in result.stderr


def test_stream_and_json_together_are_a_usage_error(run):
    """--stream prints as it comes, --json at the end: asking both is refused."""
    run("init")
    result = CliRunner().invoke(cli, ["ask", "x", "--stream", "--json"])
    assert result.exit_code == 2 and "--stream" in result.output


def test_ctrl_c_stops_a_stream_cleanly_and_logs_it(run, on_server, db_path, tmp_path):
    """SIGINT while a slow stream prints: the command ends (130) without a traceback, the
    server sees the client leave, and the partial call is a CANCELLED row."""
    import os
    import signal
    import subprocess
    import sys

    import vendor_server as vs

    on_server.script(vs.Fault(piece_delay=0.3))
    env = {**os.environ, "IMS_DB": str(db_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ims_kit.cli import main; main()", "ask",
         "one two three four five six seven eight", "--model", "local", "--stream"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    first = proc.stdout.read(6)  # "echo: " then the pieces come 0.3 s apart
    assert first == "echo: "
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "stopped; the partial call is logged" in err
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT model_id, success, error_kind FROM usage").fetchall()
    assert rows == [("local", 0, "CANCELLED")]
