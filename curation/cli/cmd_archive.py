import click

from . import params
from .base import handle_errors, json_option, render


@click.group("archive")
def command():
    """Preservation copies of the whole archive in a DataLad RIA store."""


@command.command("push")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.option("--to", "to", required=True, metavar="ria+file:///PATH",
              help="RIA store URL (created when new); ria+ssh://HOST/PATH works too.")
@click.option("--name", "sibling", default="ria", show_default=True, help="Name of the sibling in the archive.")
@click.option("--alias", help="Alias of the archive in the store (default: the archive folder's name).")
@click.option("--wait", type=params.WAIT, default=0, help="Seconds to wait for another writer's lock.")
@json_option
@handle_errors
def push_cmd(archive, to, sibling, alias, wait, as_json):
    """Push ARCHIVE, every acquisition and all content to a RIA store."""
    from ..repository.preservation import push

    def text(r):
        line = f"{r.status.value:10} {r.message}"
        if r.data.get("clone_url"):
            line += f"\n           restore with: curate archive restore '{r.data['clone_url']}' DEST"
        return line

    render(push(archive, to, name=sibling, alias=alias, lock_timeout=wait), as_json, text=text)


@command.command("restore")
@click.argument("url", metavar="ria+file:///PATH#~ALIAS")
@click.argument("dest", type=click.Path(file_okay=False))
@json_option
@handle_errors
def restore_cmd(url, dest, as_json):
    """Clone an archive from a RIA store into DEST and get all its content."""
    from ..repository.preservation import restore

    render(restore(url, dest), as_json, text=lambda r: f"{r.message}\n  check it with: curate verify {r.path}")
