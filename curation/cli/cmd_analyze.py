"""``curate analyze``: objects of a label version, their statistics per parent, stored."""

import click

from . import params
from .base import handle_errors, json_option, render

PRESETS = ("nuclear-pore", "mitochondrion", "vesicle")  # curation.analysis.run.PRESETS (kept import-free)


def _text(r) -> str:
    d = r.data
    if r.action != "analyze":
        return r.message
    lines = [r.message, f"  report          {d.get('report')}", f"  record          {d.get('record')}",
             f"  instances       {d.get('instances')}" + (f" (tag {d['tag']})" if d.get("tag") else "")]
    for f in d.get("findings", []):
        lines.append(f"  FLAG            {f}")
    for a in d.get("agreement", []):
        got = "none" if a.get("measured") is None else f"{a['measured']:.4g}"
        lines.append(f"  {a['quantity']:16}{got} vs {a['expected']:.4g}: {'agrees' if a['agrees'] else 'DISAGREES'}")
    if d.get("archive_commit"):
        lines += [f"  archive commit  {d['archive_commit']}", f"  dataset commit  {d['dataset_commit']}"]
    return "\n".join(lines)


@click.command("analyze")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option("--layer", required=True, metavar="LAYER@vN", help="The label version whose objects are analysed.")
@click.option("--min-size-nm3", type=params.VOLUME_NM3, help="Drop objects smaller than this volume (nm³).")
@click.option("--within", metavar="LAYER@vN", help="Keep objects inside this layer's non-zero voxels (see --within-rule).")
@click.option("--per", metavar="LAYER@vN",
              help="Group objects by the parents of this layer (its instance ids, or its connected components).")
@click.option("--preset", type=click.Choice(PRESETS),
              help="Defaults and plausible ranges of a structure (sizes, densities); results outside are flagged.")
@click.option("--connectivity", type=click.Choice(["6", "18", "26"]), default="26", show_default=True,
              help="Voxel neighbourhood that joins an object.")
@click.option("--select", "select", multiple=True, type=int, metavar="VALUE",
              help="Analyse only these label values (repeat); default every non-zero value.")
@click.option("--within-rule", type=click.Choice(["majority", "any", "all"]),
              help="Inside means: at least half, any, or all of an object's voxels (default: the preset's, else majority).")
@click.option("--within-margin-nm", type=params.LENGTH_NM, help="Grow the --within layer by this distance first.")
@click.option("--per-mode", type=click.Choice(["instances", "components"]),
              help="Parents are the --per layer's ids, or the connected components of its mask "
              "(default: ids for a layer of kind instances).")
@click.option("--per-margin-nm", type=params.LENGTH_NM, help="Objects this close to a parent belong to it.")
@click.option("--surface", type=click.Choice(["mesh", "faces"]),
              help="Parent surface from a smoothed marching-cubes mesh (default) or a voxel-face count.")
@click.option("--output", metavar="LAYER", help="Name of the instance layer written (default: LAYER-instances).")
@click.option("--expect", "expect", multiple=True, metavar="KEY=VALUE[/TOL]",
              help="Known values to compare with: count=37/0, diameter_nm=120/5%, density_per_um2=11/5%.")
@click.option("--expect-source", metavar="TEXT", help="Where the --expect values come from (kept in the record).")
@click.option("--note", default="", help="Free text kept in the record.")
@click.option("--wait", type=params.WAIT, default=0, help="Seconds to wait for another writer's lock.")
@click.option("--scheduler", help="Dask scheduler address for writing the instance layer; default: a local cluster.")
@json_option
@handle_errors
def command(archive, name, layer, min_size_nm3, within, per, preset, connectivity, select, within_rule,
            within_margin_nm, per_mode, per_margin_nm, surface, output, expect, expect_source, note, wait, scheduler,
            as_json):
    """Find the objects of a label version, measure them, and store the result.

    Writes the objects as a label version of kind instances, tables (Parquet, CSV), plots
    and an HTML report under the acquisition's analysis/ folder, and a run record; with
    --per, the count, density per µm² of surface and sizes per parent.
    """
    from ..analysis.run import analyze, parse_expectation
    from ..repository.pyramid import WriteOptions

    records = analyze(archive, name, layer, within=within, per=per, preset_name=preset, min_size_nm3=min_size_nm3,
                      connectivity=int(connectivity), select=list(select) or None, within_rule=within_rule,
                      within_margin_nm=within_margin_nm, per_mode=per_mode, per_margin_nm=per_margin_nm,
                      surface=surface, output=output, expected=parse_expectation(expect, expect_source), note=note,
                      options=WriteOptions(scheduler=scheduler, lock_timeout=wait))
    render(records, as_json, text=_text, single=True)
