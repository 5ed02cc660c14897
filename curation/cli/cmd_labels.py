"""``curate labels``: versioned label layers (import, list, show, diff, aggregate, paint)."""

import re

import click

from . import params
from .base import handle_errors, json_option, render

#: options that take several values in a row: ``--slices 3 7 12``, ``--names 1=mito 2=er``
_GREEDY = {"--slices": re.compile(r"^\d+([-,]|\.\.)?[\d,.-]*$"), "--names": re.compile(r"^\d+=.+$")}


class _GreedyCommand(click.Command):
    """Lets ``--slices`` and ``--names`` take several values, rewritten to one per option."""

    def parse_args(self, ctx, args):
        out, i = [], 0
        while i < len(args):
            a = args[i]
            pattern = _GREEDY.get(a)
            if pattern is None:
                out.append(a)
                i += 1
                continue
            i += 1
            took = 0
            while i < len(args) and pattern.match(args[i]):
                out += [a, args[i]]
                i += 1
                took += 1
            if not took:
                out.append(a)  # click reports the missing value
        return super().parse_args(ctx, out)


def _options():
    def deco(fn):
        fn = click.option("--wait", type=params.WAIT, default=0, help="Seconds to wait for another writer's lock.")(fn)
        fn = click.option("--scheduler", help="Dask scheduler address; default: a local cluster.")(fn)
        fn = click.option("--parent", "parents", multiple=True, metavar="LAYER@vN",
                          help="Parent version(s). import: default the layer's latest version, which the new "
                          "version builds on; aggregate: default none (a consensus stands on its annotations).")(fn)
        fn = click.option("--names", "names", multiple=True, metavar="VALUE=NAME...",
                          help="Name label values: --names 1=mitochondrion 2=ER.")(fn)
        fn = click.option("--creator", help="Who made the labels (default: your git identity).")(fn)
        fn = click.option("--note", default="", help="Free text kept in the lineage.")(fn)
        return fn

    return deco


def _shown(text) -> str:
    """An annotator id as printed: control characters escaped (a stored id cannot clear the screen)."""
    from ..safeload import escape

    return escape(str(text))


def _write_text(r) -> str:
    d = r.data
    if r.action == "recover" or "tag" not in d:
        return r.message
    lines = [r.message, f"  group          {r.path}", f"  tag            {d.get('tag')}",
             f"  archive commit {d.get('archive_commit')}", f"  dataset commit {d.get('dataset_commit')}"]
    for s in d.get("annotators", []) or []:
        flag = "  FLAGGED: " + "; ".join(s.get("reasons", [])) if s.get("flagged") else ""
        dice = s.get("dice")
        lines.append(f"  {_shown(s['annotator']):20} Dice {dice if dice is None else f'{dice:.3f}'}{flag}")
    return "\n".join(lines)


@click.group("labels")
def command():
    """Versioned label layers of an acquisition: LAYER@vN addresses a version, LAYER the latest."""


@command.command("import", cls=_GreedyCommand)
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("source", type=click.Path(exists=True))
@click.option("--layer", required=True, help="Layer name; each import creates its next version.")
@click.option("--slices", "slices", multiple=True, metavar="Z...",
              help="Image slice of each source slice, in order: --slices 3 7 12 (ranges: 0-19). "
              "Default: from the file names, or all slices.")
@click.option("--numbering", type=click.Choice(["source", "z", "z1"]),
              help="How numbers in mask file names map to slices: 'source' matches the image's source file "
              "with the same number (the default when the image was ingested from numbered slice files), "
              "'z' reads them as 0-based slice indices, 'z1' as 1-based slice numbers (ImageJ).")
@click.option("--replace", is_flag=True, help="Start the new version from nothing instead of building on the "
              "layer's latest version (whose annotated slices are otherwise kept).")
@click.option("--kind", type=click.Choice(["ground-truth", "prediction", "consensus"]), default="ground-truth",
              show_default=True)
@_options()
@json_option
@handle_errors
def import_(archive, name, source, layer, slices, numbering, replace, kind, note, creator, names, parents, scheduler,
            wait, as_json):
    """Import SOURCE (a TIFF stack, a folder of masks, an OME-Zarr label image) as a new version.

    The new version keeps the annotations of the layer's latest version and adds (or, for
    a slice given again, replaces) the slices in SOURCE; --replace starts from nothing."""
    from ..labels.importer import import_labels
    from ..repository.pyramid import WriteOptions

    records = import_labels(archive, name, layer, source, slices=list(slices) or None, numbering=numbering,
                            replace=replace, kind=kind, note=note, creator=creator, names=list(names),
                            parents=list(parents) or None, options=WriteOptions(scheduler=scheduler, lock_timeout=wait))
    render(records, as_json, text=_write_text, single=True)


@command.command("aggregate", cls=_GreedyCommand)
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("annotations", type=click.Path(exists=True))
@click.option("--layer", required=True, help="Layer to store the consensus in (its next version).")
@click.option("--method", type=click.Choice(["majority", "staple", "cria"]), default="majority", show_default=True,
              help="majority: a voxel is foreground when most annotators say so; staple: STAPLE's expectation-"
              "maximisation, weighting annotators by their estimated sensitivity and specificity; cria: for "
              "outlines, each volunteer's traces closed and filled, the interiors averaged (majority of the "
              "interiors).")
@click.option("--band-width-nm", type=params.LENGTH_NM,
              help="cria only: redraw the consensus region's boundary as an envelope band this many nm wide "
              "(converted with the image's pixel size). Default: no band, the filled region is stored.")
@click.option("--polyline-mode", type=click.Choice(["fill", "trace"]),
              help="majority/staple on polylines: fill the outlines (default) or draw the traces.")
@click.option("--width-px", type=params.WIDTH_PX, help="Trace width in pixels for --polyline-mode trace.")
@click.option("--numbering", type=click.Choice(["source", "z", "z1"]),
              help="How numbers in mask file names map to slices (as for labels import).")
@_options()
@json_option
@handle_errors
def aggregate(archive, name, annotations, layer, method, band_width_nm, polyline_mode, width_px, numbering, note,
              creator, names, parents, scheduler, wait, as_json):
    """Store the consensus of volunteer ANNOTATIONS as the next version of --layer.

    ANNOTATIONS is either one folder holding one subfolder per annotator (the subfolder's
    name is the annotator id; each holds one mask per annotated slice, .tif/.tiff/.png,
    the slice number in the file name), or a polyline export (.csv with columns
    annotator, slice, trace, x, y [, closed]; or curation-polylines/1 .json). Polyline
    vertices up to 2 px outside the slice are clipped to it (with a warning)."""
    from ..labels.aggregation import aggregate_labels
    from ..repository.pyramid import WriteOptions

    records = aggregate_labels(archive, name, layer, annotations, method=method, band_width_nm=band_width_nm,
                               polyline_mode=polyline_mode, width_px=width_px, numbering=numbering, note=note,
                               creator=creator,
                               names=list(names), parents=list(parents) or None,
                               options=WriteOptions(scheduler=scheduler, lock_timeout=wait))
    render(records, as_json, text=_write_text, single=True)


@command.command("list")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@json_option
@handle_errors
def list_(archive, name, as_json):
    """List every label version of acquisition NAME."""
    from ..labels.layers import list_labels

    records = list_labels(archive, name)
    if not records and not as_json:
        click.echo(f"{name}: no label layers yet")
    render(records, as_json, text=lambda r: r.message)


def _show_text(r) -> str:
    d = r.data
    lines = [f"{d['address']}  ({d['path']})"]
    for key in ("kind", "creator", "created", "parents", "note", "dtype", "unlabeled_value", "shape", "levels",
                "provenance", "archive_commit", "dataset_commit"):
        lines.append(f"  {key:16} {d.get(key)}")
    lines.append(f"  {'annotated':16} {len(d['annotated_slices'])} slice(s):")
    for s in d["annotated_sources"]:
        lines.append(f"    z {s['z']:<6}" + (f" {s['source']}" if s["source"] else ""))
    if d["annotated"].get("regions"):
        lines.append(f"  {'regions':16} {d['annotated']['regions']}")
    names = d.get("label_names", {})
    for v, n in d["value_counts"].items():
        lines.append(f"  value {v:>10} {names.get(v) or '':20} {n} voxel(s)")
    for a in d["ancestry"]:
        lines.append(f"  ancestor         {a['address']} {a.get('kind') or ''}")
    lines.append(f"  {'tags':16} {sorted(set(d['tags'].get('dataset', []) + d['tags'].get('archive', [])))}")
    consensus = d["lineage"].get("consensus") or {}
    for s in consensus.get("annotators", []):
        dice = s.get("dice")
        lines.append(f"  annotator        {_shown(s['annotator']):20} Dice {'-' if dice is None else f'{dice:.3f}'}"
                     + ("  FLAGGED" if s.get("flagged") else ""))
    return "\n".join(lines)


@command.command("show")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("layer")
@json_option
@handle_errors
def show(archive, name, layer, as_json):
    """Describe LAYER[@vN]: lineage, annotated slices, label value counts, tags."""
    from ..labels.layers import show_labels

    render(show_labels(archive, name, layer), as_json, text=_show_text, single=True)


def _diff_text(r) -> str:
    d = r.data
    lines = [r.message, f"  slices added   {d['slices_added']}", f"  slices removed {d['slices_removed']}"]
    for v, s in d["per_value"].items():
        name = d["label_names"].get(v) or ""
        lines.append(f"  value {v:>6} {name:16} A {s['voxels_a']}  B {s['voxels_b']}  +{s['gained']} "
                     f"-{s['lost']}  Dice {s['dice']:.4f}")
    return "\n".join(lines)


@command.command("diff")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("a")
@click.argument("b")
@json_option
@handle_errors
def diff(archive, name, a, b, as_json):
    """Compare label versions A and B: slices added/removed, voxels changed and Dice per label."""
    from ..labels.diff import diff_labels

    render(diff_labels(archive, name, a, b), as_json, text=_diff_text, single=True)


@command.command("paint")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("edit", type=click.Path(exists=True, dir_okay=False))
@click.option("--base", metavar="LAYER@vN", help="Version painted over (its parent); overrides the edit's 'base'.")
@click.option("--layer", help="Layer to save into (default: the base's layer); overrides the edit's 'layer'.")
@click.option("--note", help="Free text kept in the lineage; overrides the edit's 'note'.")
@click.option("--creator", help="Who painted (default: the edit's, else your git identity).")
@click.option("--wait", type=params.WAIT, default=0, help="Seconds to wait for another writer's lock.")
@click.option("--scheduler", help="Dask scheduler address; default: a local cluster.")
@json_option
@handle_errors
def paint(archive, name, edit, base, layer, note, creator, wait, scheduler, as_json):
    """Apply EDIT (strokes on any plane, as `curate serve` saves them) as a new ground-truth version.

    EDIT is JSON: {"base": "mito@v2", "strokes": [{"plane": "xz", "index": 120, "value": 1,
    "radius": 2, "points": [[row, col], ...]}], "complete": [{"plane": "xy", "index": 16}],
    "note": "..."}; coordinates are level-0 voxel indices."""
    from ..web.catalog import Catalog
    from ..web.paint import load_edit
    from ..web.paint import paint as store

    doc = load_edit(edit)
    for key, value in (("base", base), ("layer", layer), ("note", note), ("creator", creator)):
        if value is not None:
            doc[key] = value
    result = store(Catalog(archive), name, doc, tool="curate labels paint", lock_timeout=wait, scheduler=scheduler)
    render([result], as_json, text=_write_text, single=True)
