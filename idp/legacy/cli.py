"""``idp torch import FILE [--dry-run] [--source torch|programme|hgr] --json`` (INTERFACES.md)."""

from __future__ import annotations

import json

import click

from idp import unit_of_work
from idp.extensions import db
from idp.models.legacy import SOURCES


@click.group("torch")
def torch():
    """Accounts of the Torch Center platform and the other legacy systems."""


@torch.command("import")
@click.argument("file", type=click.Path(dir_okay=False, readable=True))
@click.option("--dry-run", is_flag=True, help="decide and count every record, write nothing")
@click.option("--source", type=click.Choice(SOURCES), default="torch", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the counts as one JSON line (always on)")
@unit_of_work.command
def torch_import(file, dry_run, source, as_json):
    """Import a legacy export (CSV with a header, or JSON Lines); idempotent and resumable. Each
    batch is committed as it is decided (the checkpoint): a killed run keeps what it finished."""
    from idp.legacy.service import ImportRefused, import_file

    def progress(line: int) -> None:
        click.echo(f"decided up to line {line}", err=True)

    try:
        result = import_file(file, source=source, dry_run=dry_run, checkpoint=db.session.commit,
                             after_batch=progress)
    except ImportRefused as refused:
        raise click.ClickException(str(refused)) from None
    click.echo(json.dumps(result, ensure_ascii=False, separators=(",", ":")))
