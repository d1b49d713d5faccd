"""The ``ims`` group and what every command shares: one-line errors, opening the kit, JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from ims_kit.errors import ImsError


class ImsGroup(click.Group):
    """A click group that turns every ImsError into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImsError as exc:
            raise click.ClickException(str(exc)) from None


def open_kit():
    from ims_kit.kit import Kit

    return Kit()


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(cls=ImsGroup)
@click.version_option(package_name="ims_kit")
def cli() -> None:
    """ims_kit: choose, call and watch LLM models.

    The database is IMS_DB if set, else ~/.local/share/ims_kit/ims.db.
    """
