import click

from .base import handle_errors, json_option, render


@click.command("list")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@json_option
@handle_errors
def command(archive, as_json):
    """List the acquisitions in ARCHIVE."""
    from ..repository.archive import list_acquisitions

    records = list_acquisitions(archive)
    if not records and not as_json:
        click.echo("no acquisitions yet; add one with `curate ingest`")
    render(records, as_json, text=lambda r: r.message)
