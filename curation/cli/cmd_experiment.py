"""``curate experiment``: experiments on an acquisition's ground truth, stored as analyses."""

import click

from .base import handle_errors, json_option, render


def _ints(text: str, field: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, found {text!r}", param_hint=field) from None


def _overrides(items) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected FIELD=VALUE, found {item!r}", param_hint="--set")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _text(r) -> str:
    d = r.data
    if r.action != "learning-curve":
        return r.message
    lines = [r.message, f"  report      {d.get('report')}", f"  plot        {d.get('plot')}",
             f"  record      {d.get('record')}", f"  held out    {d.get('held_out')}"]
    for p in d.get("points", []):
        lo, hi = p.get("dice_low"), p.get("dice_high")
        ci = f"[{lo:.3f}, {hi:.3f}]" if lo is not None else "(one draw)"
        lines.append(f"  k={p['k']:<4} Dice {p['dice_mean']:.3f} {ci:18} IoU {p['iou_mean']:.3f}  ({p['draws']} draws)")
    for g in d.get("gains", []):
        ci = f"[{g['low']:+.4f}, {g['high']:+.4f}]" if g.get("low") is not None else ""
        lines.append(f"  {g['k_from']}→{g['k_to']}: {g['per_slice']:+.4f} Dice per added slice {ci}")
    pr = d.get("projection")
    if pr:
        lines.append(f"  +{pr['add']} slice(s) from {pr['current']}: "
                     f"Dice {pr['dice_now']:.3f} → {pr['dice_then']:.3f} "
                     f"(gain {pr['gain']:+.3f}, 95% bootstrap [{pr['gain_low']:+.3f}, {pr['gain_high']:+.3f}])")
    if d.get("suggested"):
        lines.append(f"  annotate next: slices {', '.join(str(z) for z in d['suggested'])}")
    return "\n".join(lines)


@click.group("experiment")
def command() -> None:
    """Experiments on an acquisition's ground truth (stored as analyses)."""


@command.command("learning-curve")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option("--pipeline", required=True, help="Segmentation pipeline: a shipped name or a YAML file.")
@click.option("--labels", required=True, metavar="LAYER@vN",
              help="Ground truth whose annotated slices train and score.")
@click.option("--slices", "slices_text", default="1,2,4,8", show_default=True,
              help="Numbers of training slices k, separated by commas.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Random draws (slices and seed) per k.")
@click.option("--max-minutes", type=float, default=None, help="Time budget of each training (default: the pipeline's).")
@click.option("--iterations", type=int, default=None, help="Fixed iterations per training instead of a time budget.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws and their training seeds.")
@click.option("--add", type=int, default=None, metavar="K",
              help="Estimate what K more slices would buy, and rank unannotated slices to annotate next.")
@click.option("--held-out", type=int, default=None,
              help="Annotated slices scored (the farthest from the rest; default a quarter).")
@click.option("--gap", type=int, default=0, show_default=True,
              help="Annotated slices this close to a held-out slice never train.")
@click.option("--max-candidates", type=int, default=64, show_default=True,
              help="Unannotated slices scored for --add (spread through the volume).")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="Replace a pipeline field (dotted, e.g. training.batch=2); repeatable.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads per training (default: the pipeline's).")
@click.option("--note", default="", help="Free text kept in the record.")
@click.option("--wait", type=float, default=0, help="Seconds to wait for another writer's lock.")
@json_option
@handle_errors
def learning_curve_command(archive, name, pipeline, labels, slices_text, repeats, max_minutes, iterations, seed, add,
                           held_out, gap, max_candidates, sets, device, threads, note, wait, as_json):
    """Train on k annotated slices (several random draws per k), score held-out slices,
    and store Dice and IoU against k with 95% t intervals, the gain per added slice and
    a plot; with --add K, what K more slices would buy and which to annotate."""
    from ..analysis.experiment import learning_curve
    from ..repository.pyramid import WriteOptions

    def say(message: str) -> None:
        if not as_json:
            click.echo(f"  {message}", err=True)

    records = learning_curve(archive, name, labels, pipeline=pipeline, slices=_ints(slices_text, "--slices"),
                             repeats=repeats, max_minutes=max_minutes, iterations=iterations, seed=seed, add=add,
                             held_out=held_out, gap=gap, max_candidates=max_candidates, overrides=_overrides(sets),
                             device=device, threads=threads, note=note, options=WriteOptions(lock_timeout=wait),
                             progress=say)
    render(records, as_json, text=_text, single=True)
