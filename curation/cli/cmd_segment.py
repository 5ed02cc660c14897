"""``curate segment``: predict an acquisition with MODEL@vN into probability and prediction layers."""

import click

from .base import handle_errors, json_option, render


def _text(r) -> str:
    d = r.data
    if r.action != "segment":
        return r.message
    lines = [r.message, f"  prediction      {d.get('prediction')}", f"  probability     {d.get('probability')}"]
    for ax, a in (d.get("views") or {}).items():
        lines.append(f"  view {ax}          {a}")
    if d.get("record"):
        lines.append(f"  record          {d['record']}")
    if d.get("voxels_per_second"):
        lines.append(f"  speed           {d['voxels_per_second'] / 1e6:.2f} Mvox/s on {d.get('device')} "
                     f"({d.get('threads')} thread(s))")
    return "\n".join(lines)


@click.command("segment")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option("--model", required=True, metavar="MODEL@vN", help="A model of the archive's models dataset.")
@click.option("--tri-axis/--one-axis", "tri_axis", default=None,
              help="Predict along z, y and x and combine (default: the pipeline's).")
@click.option("--keep-views", is_flag=True, help="With --tri-axis, also store each view's probability layer.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("--threads", type=int, help="CPU threads (recorded: CPU results repeat bit for bit for one count).")
@click.option("--layer", "layer", metavar="OUT", help="The prediction layer's name (default: the model's); the "
              "probability layer is OUT-probability.")
@click.option("--block-shape", metavar="Z,Y,X", help="Blocks of the blockwise prediction (default: the pipeline's).")
@click.option("--again", is_flag=True, help="A new version even when this same prediction was made before.")
@click.option("--scheduler", help="Dask scheduler address for writing the layers; default: a local cluster.")
@click.option("--note", default="", help="Free text kept in the record.")
@click.option("--wait", type=float, default=0, help="Seconds to wait for another writer's lock.")
@json_option
@handle_errors
def command(archive, name, model, tri_axis, keep_views, device, threads, layer, block_shape, again, scheduler, note,
            wait, as_json):
    """Predict acquisition NAME with MODEL@vN, blockwise, and store the probability (uint8)
    and prediction layers with their lineage; the commit carries a DataLad run record."""
    from ..errors import SegmentationError
    from ..repository.pyramid import WriteOptions
    from ..segmentation.prediction_run import segment_acquisition

    bs = None
    if block_shape:
        try:
            bs = [int(v) for v in block_shape.split(",")]
        except ValueError:
            bs = []
        if len(bs) != 3:
            raise SegmentationError("not a block shape", field="--block-shape", expected="Z,Y,X", found=block_shape)
    records = segment_acquisition(archive, name, model, tri_axis=tri_axis, keep_views=keep_views, device=device,
                                  layer=layer, threads=threads, block_shape=bs, again=again, note=note,
                                  options=WriteOptions(scheduler=scheduler, lock_timeout=wait))
    render(records, as_json, text=_text, single=True)
