import click

from .base import handle_errors, json_option, render
from .progress import progress_bar


@click.command("demo")
@click.argument("directory", type=click.Path(file_okay=False), default="demo-output")
@click.option("--shape", help="Phantom shape z,y,x in voxels (default: the pipeline's, 48,256,256).")
@click.option("--seed", type=int, help="Random seed of the phantom (default: the pipeline's).")
@click.option("--pipeline", "pipeline", type=click.Path(exists=True, dir_okay=False),
              help="A pipeline definition (default: pipelines/demo.yaml).")
@json_option
@handle_errors
def command(directory, shape, seed, pipeline, as_json):
    """Run the whole loop on a generated phantom: ingest, label versions, verify, package."""
    from ..demo.loop import run_demo
    from ..demo.phantom import PhantomSpec
    from ..pipelines import PhantomConfig, load_pipeline

    cfg = load_pipeline(pipeline).phantom or PhantomConfig()
    shape_zyx = tuple(int(v) for v in shape.split(",")) if shape else tuple(cfg.shape)
    spec = PhantomSpec(shape=shape_zyx, voxel_size_nm=cfg.voxel_size_nm, seed=cfg.seed if seed is None else seed)
    with progress_bar("ingest phantom") as cb:
        records = run_demo(directory, spec, pipeline=pipeline, progress=cb)
    render(records, as_json, text=lambda r: f"{r.action:16} {r.status.value:6} {r.message}")
