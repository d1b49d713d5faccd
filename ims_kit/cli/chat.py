"""``ims chat``: a conversation in the terminal, every turn a logged, recovered call."""

from __future__ import annotations

import click

from ims_kit.cli.base import cli, open_kit
from ims_kit.cli.calls import (
    generation_options,
    model_options,
    notices,
    option_values,
    print_stream,
)
from ims_kit.formatting import money
from ims_kit.prompts import build_prompt

HELP = "/reset forgets the conversation, /exit (or Ctrl-D) ends it; Ctrl-C stops an answer."


@cli.command()
@model_options
@generation_options
def chat(
    model, fallbacks, provider, strategy, system, temperature, top_p, max_tokens, stop, seed
) -> None:
    """Hold a conversation: each turn sends the whole conversation so far, streamed; the
    model, the turn's cost and the session's are shown as it goes."""
    options = option_values(system, temperature, top_p, max_tokens, stop, seed)
    build_prompt("check", caller="chat", **options)  # bad options fail now, not at turn one
    kit = open_kit()
    call = dict(model=model, fallbacks=list(fallbacks) or None, provider=provider, **options)
    if model is None:
        call["strategy"] = strategy
    history: list[dict[str, str]] = []
    session = _Session()
    click.echo(f"ims chat: {HELP}", err=True)
    while True:
        try:
            line = input("you> ")
        except EOFError:
            break
        except KeyboardInterrupt:
            click.echo("", err=True)
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            history.clear()
            click.echo("ims: the conversation starts again", err=True)
            continue
        turn = [*history, {"role": "user", "content": line}]
        answer = print_stream(kit.stream(messages=turn, **call))
        if answer is None:  # stopped: the unfinished turn is not kept
            continue
        history[:] = [*turn, {"role": "assistant", "content": answer.text}]
        notices(answer)
        session.add(answer)
        click.echo(f"ims: {session.line(answer)}", err=True)
    click.echo(f"ims: {session.summary()}", err=True)


class _Session:
    """The turns' cost so far: real and simulated apart, unpriced turns counted, never $0."""

    def __init__(self) -> None:
        self.turns = 0
        self.real = 0
        self.cost = 0.0
        self.simulated = 0.0
        self.unpriced = 0

    def add(self, answer) -> None:
        self.turns += 1
        if answer.cost_usd is None:
            self.unpriced += 1
        elif answer.provider == "simulated":
            self.simulated += answer.cost_usd
        else:
            self.real += 1
            self.cost += answer.cost_usd

    def total(self) -> str:
        parts = [money(self.cost)] if self.real or not (self.simulated or self.unpriced) else []
        if self.simulated:
            parts.append(f"{money(self.simulated)} simulated")
        if self.unpriced:
            parts.append(f"{self.unpriced} unpriced turn{'s' * (self.unpriced > 1)}")
        return ", ".join(parts)

    def line(self, answer) -> str:
        cost = "unpriced" if answer.cost_usd is None else money(answer.cost_usd)
        return (
            f"{answer.model_id} ({answer.provider}): {answer.tokens_in} in / "
            f"{answer.tokens_out} out, {cost}; session {self.total()}"
        )

    def summary(self) -> str:
        return f"{self.turns} turn{'s' * (self.turns != 1)}, {self.total()}"
