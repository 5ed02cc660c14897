import click

from .base import handle_errors, json_option, render


@click.command("run")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("pipeline", type=click.Path(exists=True, dir_okay=False))
@click.option("--acquisition", help="Acquisition the steps work on (default: the pipeline's `acquisition`).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Where outputs outside the archive go "
              "(packages); default the current folder.")
@json_option
@handle_errors
def command(archive, pipeline, acquisition, workdir, as_json):
    """Run the steps of a PIPELINE file (pipelines/*.yaml) on ARCHIVE, in order."""
    from ..pipelines.run import run_file

    render(run_file(archive, pipeline, acquisition=acquisition, workdir=workdir), as_json,
           text=lambda r: f"{r.action:16} {r.status.value:9} {r.message}")
