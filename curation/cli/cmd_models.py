"""``curate models list|show``: the archive's trained models, readable without code."""

import click

from .base import handle_errors, json_option, render


@click.group("models")
def command() -> None:
    """The archive's trained models (the models dataset)."""


@command.command("list")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@json_option
@handle_errors
def list_cmd(archive, as_json):
    """Every model version: pipeline, training data, validation Dice, parent."""
    from ..segmentation.models import list_models

    render(list_models(archive), as_json, text=lambda r: r.message)


def _show(r) -> str:
    d = r.data
    c = d["card"]
    td, tr, v = c["training_data"], c["training"], c["validation"]
    dice = "-" if v["best_dice"] is None else f"{v['best_dice']:.3f}"
    lines = [
        r.message,
        f"  package         {d['path']} (tag {d['tag']})",
        f"  pipeline        {d['pipeline']} ({d['dims']}), target {d['target']}",
        f"  trained on      {td['source']['acquisition']} {d['labels']} (slices {td['annotated_slices']}), "
        f"image tree {str(td['source']['image_tree_checksum'])[:16]}...",
        f"  training        {tr['iterations']} iterations, seed {tr['seed']}, {tr['threads']} thread(s) on "
        f"{tr['device']} ({tr['device_name']}), {tr['seconds']:.0f} s, stopped by {tr['stopped_by']}",
        f"  validation      Dice {dice} on slices {v['slices']} ({v['selection']})",
        f"  weights sha256  {c['files']['weights_sha256']}",
        f"  intended use    {' '.join(c['intended_use'].split())}",
        f"  limitations     {' '.join(c['limitations'].split())}",
        "  lineage (model <- parent model, beside the labels each was trained on):",
    ]
    lines += [f"    {line}" for line in d["lineage"]]
    return "\n".join(lines)


@command.command("show")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("model", metavar="MODEL[@vN]")
@json_option
@handle_errors
def show_cmd(archive, model, as_json):
    """One model's card, and its lineage beside the label lineage it was trained on."""
    from ..segmentation.models import show_model

    render(show_model(archive, model), as_json, text=_show, single=True)
