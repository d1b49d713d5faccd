"""``ims gemini``: the gemini CLI on the model ims selects; the logic is ``ims_kit.gemini_cli``."""

from __future__ import annotations

import sys

import click

from ims_kit.cli.base import cli


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("prompt")
@click.argument("passthrough", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--no-fallback", is_flag=True, help="Fail rather than switch to the next Gemini model."
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds one run of the CLI may take before it is stopped. [env: IMS_GEMINI_TIMEOUT_S,"
    " default 180]",
)
def gemini(
    prompt: str, passthrough: tuple[str, ...], no_fallback: bool, timeout_s: float | None
) -> None:
    """Ask PROMPT through Google's gemini CLI, on the Gemini model ims selects.

    The model follows IMS_STRATEGY (default cost) and IMS_MIN_CONTEXT (default 10000); every
    run is logged with its tokens and cost, and goes through the same recovery as `ims ask`:
    on a failure such as an exhausted quota, ims says so on stderr and switches to the next
    Gemini model (unless --no-fallback). Arguments after `--` go to gemini unchanged
    (`ims gemini "Generate code" -- --yolo`); piped input is given to gemini as context;
    PROMPT '-' reads the prompt from stdin. Exits with gemini's own exit code when no model
    answers. The executable is IMS_GEMINI_BIN, else `gemini` on PATH.
    """
    from ims_kit import gemini_cli

    piped = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    if prompt == "-":
        prompt, piped = piped or "", None
    kit = gemini_cli.open_kit()
    try:
        answer = gemini_cli.ask(
            kit,
            prompt,
            passthrough=passthrough,
            fallback=not no_fallback,
            stdin=piped,
            timeout_s=timeout_s,
            notify=lambda message: click.echo(f"ims: {message}", err=True),
        )
    except gemini_cli.GeminiCliFailed as exc:
        failure = click.ClickException(str(exc))
        failure.exit_code = exc.exit_code
        raise failure from None
    finally:
        kit.close()
    click.echo(answer.text)
