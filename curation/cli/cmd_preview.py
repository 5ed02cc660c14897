import click

from .base import handle_errors, json_option, render


@click.command("preview")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("layer", required=False, metavar="[LAYER@vN]")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Folder for the PNGs (default: ./NAME-preview).")
@click.option("--size", type=click.IntRange(64, 4096), default=512, show_default=True,
              help="Longer side of each picture, in pixels.")
@json_option
@handle_errors
def command(archive, name, layer, out, size, as_json):
    """PNG thumbnails of NAME: the middle XY, XZ and YZ slices (contrast from robust
    percentiles, true voxel aspect), and with LAYER@vN the same planes with its labels."""
    from ..web.preview import preview

    render(preview(archive, name, layer, out, size=size), as_json,
           text=lambda r: f"{r.path}  {r.message}")
