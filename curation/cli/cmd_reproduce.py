"""``curate reproduce``: recompute a stored prediction and compare it, bit for bit."""

import click

from .base import handle_errors, json_option, render


@click.command("reproduce")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("layer", metavar="LAYER@vN")
@click.option("--device", help="Recompute on this device (default: the recorded one; another one compares "
              "within bioimage.io's tolerance).")
@click.option("--scratch", type=click.Path(file_okay=False), help="Folder for the recomputed arrays (default: temp).")
@json_option
@handle_errors
def command(archive, name, layer, device, scratch, as_json):
    """Recompute the prediction LAYER@vN of NAME from its record and report bit-identical,
    or how many voxels differ and where. Exit status 1 when it differs."""
    from ..segmentation.prediction_run import reproduce_prediction

    render(reproduce_prediction(archive, name, layer, device=device, scratch=scratch), as_json, single=True)
