import click

from .base import handle_errors, json_option, render
from .progress import progress_bar


@click.command("demo")
@click.argument("directory", type=click.Path(file_okay=False), default="demo-output")
@click.option("--shape", default="48,256,256", show_default=True, help="Phantom shape z,y,x in voxels (8 nm).")
@click.option("--seed", default=0, show_default=True, help="Random seed of the phantom.")
@json_option
@handle_errors
def command(directory, shape, seed, as_json):
    """Run the whole loop on a generated phantom: ingest, label versions, verify, package."""
    from ..demo.loop import run_demo
    from ..demo.phantom import PhantomSpec

    z, y, x = (int(v) for v in shape.split(","))
    with progress_bar("ingest phantom") as cb:
        records = run_demo(directory, PhantomSpec(shape=(z, y, x), seed=seed), progress=cb)
    render(records, as_json, text=lambda r: f"{r.action:16} {r.status.value:6} {r.message}")
