import click

from .base import handle_errors, json_option, render


@click.group("metadata")
def command():
    """Acquisition metadata: a commented template, and checks of filled files."""


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

    def text(r):
        sev = r.data.get("severity", "error" if r.failed else "ok")
        if r.data.get("field"):
            return f"{sev}: {r.data['field']}: {r.message}"
        return f"{sev}: {r.message}"

    render(check_metadata(file), as_json, text=text)
