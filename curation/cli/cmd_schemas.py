import click

from .base import handle_errors, json_option, render


@click.group("schemas")
def command():
    """JSON Schemas generated from curation's models."""


@command.command("export")
@click.argument("directory", type=click.Path(file_okay=False), default="schemas")
@json_option
@handle_errors
def export_cmd(directory, as_json):
    """Write the JSON Schema files into DIRECTORY (default: schemas)."""
    from ..schemas import export_all

    render(export_all(directory), as_json)
