import click

from . import params
from .base import handle_errors, json_option, render


@click.group("metadata")
def command():
    """Acquisition metadata: a commented template, checks of filled files, and corrections after ingest."""


@command.command("template")
@click.option("--technique", default="FIB-SEM", show_default=True,
              help="Tailor hints to a technique (FIB-SEM, SBF-SEM, ATUM-SEM, ssTEM, SEM, TEM, STEM, ET).")
@handle_errors
def template_cmd(technique):
    """Print a commented YAML template to fill in."""
    from ..metadata import template

    click.echo(template(technique), nl=False)


@command.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
@handle_errors
def check_cmd(file, as_json):
    """Validate a filled metadata FILE; report every problem with its field path."""
    from ..metadata import check_metadata

    def text(r):  # the message names the field (and its line) already
        sev = r.data.get("severity", "error" if r.failed else "ok")
        return f"{sev}: {r.message}"

    render(check_metadata(file), as_json, text=text)


@command.command("show")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@json_option
@handle_errors
def show_cmd(archive, name, as_json):
    """Print acquisition NAME's current metadata as YAML."""
    from ..repository.metadata_update import show_metadata

    render(show_metadata(archive, name), as_json, text=lambda r: r.message.rstrip("\n"), single=True)


@command.command("update")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--allow-geometry-change", is_flag=True,
              help="Allow a new voxel size: rewrites the scale of the image and of every label version.")
@click.option("--note", default="", help="Why the metadata changed (kept in the run record and commit).")
@click.option("--wait", type=params.WAIT, default=0, help="Seconds to wait for another writer's lock.")
@json_option
@handle_errors
def update_cmd(archive, name, file, allow_geometry_change, note, wait, as_json):
    """Replace acquisition NAME's metadata with FILE: validated, checked against the image,
    committed with the list of changed fields."""
    from ..repository.metadata_update import update_metadata
    from ..repository.pyramid import WriteOptions

    def text(r):
        if r.action != "metadata-update" or not r.data.get("changes"):
            return r.message
        lines = [r.message] + [f"  {c['field']}: {c.get('old')!r} -> {c.get('new')!r}" for c in r.data["changes"]]
        return "\n".join(lines)

    render(update_metadata(archive, name, file, allow_geometry_change=allow_geometry_change, note=note,
                           options=WriteOptions(lock_timeout=wait)), as_json, text=text)
