"""``curate train``: train a segmentation pipeline on ground truth, store MODEL@vN."""

import click

from .base import handle_errors, json_option, render


def _text(r) -> str:
    d = r.data
    if r.action != "train":
        return r.message
    dice = "-" if d.get("best_dice") is None else f"{d['best_dice']:.3f}"
    lines = [r.message, f"  model           {d.get('model')} (tag {d.get('tag')})", f"  package         {d.get('package')}",
             f"  card            {d.get('card')}", f"  validation Dice {dice} on slices {d.get('validation_slices')}"]
    if d.get("parent"):
        lines.append(f"  parent          {d['parent']}")
    return "\n".join(lines)


@click.command("train")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.option("--pipeline", "pipeline", required=True, metavar="NAME|FILE",
              help="A shipped pipeline (mitochondria-2d, nuclear-pores-3d, nuclear-envelope-tap) or a YAML file.")
@click.option("--acquisition", required=True, help="The acquisition whose image and labels train the model.")
@click.option("--labels", required=True, metavar="LAYER@vN", help="The ground truth (only annotated voxels count).")
@click.option("--name", help="The model's name (default: the pipeline's); the version is the next one.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("--seed", type=int, help="Random seed (default: the pipeline's).")
@click.option("--max-minutes", type=float, help="Time budget: the iterations are fitted to it.")
@click.option("--init", metavar="MODEL@vN", help="Fine-tune from this model of the archive (named in the card).")
@click.option("--iterations", type=int, help="Override the pipeline's iterations (with no time budget: exactly these).")
@click.option("--threads", type=int, help="CPU threads (default: the pipeline's).")
@click.option("--wait", type=float, default=0, help="Seconds to wait for another writer's lock.")
@json_option
@handle_errors
def command(archive, pipeline, acquisition, labels, name, device, seed, max_minutes, init, iterations, threads, wait,
            as_json):
    """Train a model on LAYER@vN of an acquisition and store it as MODEL@vN in models/.

    The model is a bioimage.io package (validated) whose rdf.yaml carries the model card:
    training data with commits and checksums, every hyperparameter, validation Dice.
    """
    import sys

    from ..segmentation.training_run import train_model

    overrides = {"training.iterations": iterations} if iterations else None
    records = train_model(archive, pipeline, acquisition, labels, name=name, device=device, seed=seed,
                          max_minutes=max_minutes, init=init, overrides=overrides, threads=threads,
                          command=["curate", *sys.argv[1:]], lock_timeout=wait)
    render(records, as_json, text=_text, single=True)
