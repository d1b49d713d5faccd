"""The ``ims`` group and what every command shares: one-line errors, opening the kit, JSON."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from ims_kit.errors import ImsError, database_errors


class ImsGroup(click.Group):
    """A click group that turns every ImsError into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImsError as exc:
            raise click.ClickException(str(exc)) from None
        except database_errors() as exc:  # a read-only file, or locked past the busy timeout
            raise click.ClickException(f"database error: {exc}") from None
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None


def open_kit(*, create: bool = False):
    """The Kit on IMS_DB (or the default file); only `ims init` may create the database."""
    from ims_kit.kit import Kit

    return Kit(create=create)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(cls=ImsGroup)
@click.version_option(package_name="ims_kit")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Say what recovery does (retries, waits, fallbacks) on stderr; -vv for more.",
)
def cli(verbose: int) -> None:
    """ims_kit: choose, call and watch LLM models.

    The database is IMS_DB if set, else ~/.local/share/ims_kit/ims.db.
    """
    if verbose:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("ims: %(message)s"))
        root = logging.getLogger("ims_kit")
        root.addHandler(handler)
        root.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
