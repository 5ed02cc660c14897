import click

from .base import handle_errors, json_option, render


@click.command("verify")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name", required=False)
@click.option("--fast", is_flag=True, help="Compare sizes only, do not re-hash content.")
@click.option("--no-annex", is_flag=True, help="Skip `git annex fsck`.")
@json_option
@handle_errors
def command(archive, name, fast, no_annex, as_json):
    """Check stored acquisitions: torn or missing shards, checksums, NGFF conformance."""
    from ..repository.verify import verify

    render(verify(archive, name, fast=fast, annex=not no_annex), as_json,
           text=lambda r: ("ok    " if not r.failed else "FAIL  ") + r.message)
