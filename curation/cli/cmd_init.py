import click

from .base import handle_errors, json_option, render


@click.command("init")
@click.argument("archive", type=click.Path(file_okay=False))
@click.option("--title", help="Title of the archive (default: the folder name).")
@click.option("--description", help="A sentence on what the archive holds.")
@json_option
@handle_errors
def command(archive, title, description, as_json):
    """Create a curation archive (a DataLad superdataset) at ARCHIVE."""
    from ..repository.archive import init_archive

    render(init_archive(archive, title=title, description=description), as_json,
           text=lambda r: f"created archive {r.data['title']!r} at {r.path}")
