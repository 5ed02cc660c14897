import click

from . import params
from .base import handle_errors, json_option, render
from .progress import progress_bar


def _shape(text, option="--chunk"):
    if text is None:
        return None
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"give three integers z,y,x (found {text[:40]!r})", param_hint=option) from None
    if len(parts) != 3 or not all(0 < p <= 1 << 20 for p in parts):
        raise click.BadParameter(f"give three integers z,y,x, each 1..{1 << 20} (found {text[:40]!r})",
                                 param_hint=option)
    return parts


@click.command("ingest")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--metadata", "metadata", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Filled acquisition metadata (YAML or JSON); see `curate metadata template`.")
@click.option("--name", help="Acquisition name (default: from the source's file or folder name).")
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786) of an existing cluster; "
              "'processes' for local worker processes; 'cluster' or 'threads' to force one. Default: threads "
              "for a small job, an in-process Dask cluster for a large one (2 GiB and more).")
@click.option("--memory-limit", help="Memory cap for the whole ingest, e.g. 4GiB (default: a quarter of "
              "RAM, at most 1 GiB + 512 MiB per core).")
@click.option("--stall-timeout", type=click.FloatRange(min=0, min_open=True, max=1e7), default=None,
              help="Fail (keeping what is written, so a re-run resumes) when no block finishes for this many "
              "seconds.  [default: 600]")
@click.option("--resume/--restart", default=True, show_default=True,
              help="Continue an interrupted ingest of the same sources, or start over.")
@click.option("--wait", "wait", type=params.WAIT, default=0, help="Seconds to wait for another writer's lock.")
@click.option("--follow-symlinks", is_flag=True, help="Read slice files that are symbolic links out of their "
              "folder (refused by default) and record where each one points in the ingest record.")
@click.option("--keep-raw", is_flag=True, help="Also keep a copy of the raw files in the archive (annexed).")
@click.option("--chunk", help="Inner chunk shape z,y,x (default 64,64,64).")
@click.option("--shard", help="Shard shape z,y,x (default: 128 MiB shards, e.g. 512,512,512 for uint8).")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal).")
@json_option
@handle_errors
def command(archive, sources, metadata, name, scheduler, memory_limit, stall_timeout, resume, wait,
            follow_symlinks, keep_raw,
            chunk, shard, progress, as_json):
    """Ingest SOURCES (a DM3/DM4 file, a TIFF, or a folder of slices) into ARCHIVE as OME-Zarr."""
    from ..repository.ingest import ingest
    from ..repository.pyramid import WriteOptions

    with progress_bar(f"ingest {name or ''}".strip(), progress) as cb:
        opts = WriteOptions(scheduler=scheduler, memory_limit=memory_limit, restart=not resume,
                            lock_timeout=wait, progress=cb,
                            **({"stall_timeout": stall_timeout} if stall_timeout else {}))
        records = ingest(archive, list(sources), metadata, name=name, keep_raw=keep_raw, chunk=_shape(chunk),
                         shard=_shape(shard, "--shard"), options=opts, follow_symlinks=follow_symlinks)

    def text(r):
        if r.action != "ingest":
            return r.message
        lines = [r.message, f"  archive commit {r.data.get('archive_commit')}",
                 f"  dataset commit {r.data.get('dataset_commit')}"]
        lines += [f"  filled from file header: {f}" for f in r.data.get("filled", [])]
        lines += [f"  warning: {w}" for w in r.data.get("warnings", [])]
        return "\n".join(lines)

    render(records, as_json, text=text, single=True)
