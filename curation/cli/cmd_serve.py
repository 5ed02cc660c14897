import click

from .base import handle_errors


@click.command("serve")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback publishes the archive on your network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--allow-edit", is_flag=True, help="Allow painting ground truth (saved as new label versions).")
@click.option("--cache-mb", type=click.IntRange(16, 65536), default=512, show_default=True,
              help="Memory for decoded image chunks.")
@click.option("--scheduler", help="Dask scheduler for saving painted versions; default: a local cluster.")
@handle_errors
def command(archive, host, port, allow_edit, cache_mb, scheduler):
    """Browse ARCHIVE in a web browser: catalog, metadata, history, label lineage, slice
    viewer with overlays and version comparison, neuroglancer, and (with --allow-edit)
    painting ground truth."""
    from ..repository.archive import open_archive
    from ..web.app import serve

    open_archive(archive)  # refuse a non-archive before binding the port
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving {archive} at http://{shown}:{port}/ ({'editing allowed' if allow_edit else 'read-only'};"
               " Ctrl-C to stop)", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}: anyone who can reach this machine can read the archive", err=True)
    serve(archive, host=host, port=port, allow_edit=allow_edit, cache_mb=cache_mb, scheduler=scheduler)
