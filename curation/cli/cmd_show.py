import click

from .base import handle_errors, json_option, render


def _text(r) -> str:
    d = r.data
    lines = [f"{d['name']}  ({d['path']})"]
    for key in ("title", "technique", "organism", "shape", "dtype", "voxel_size_nm", "levels", "chunk",
                "shard", "n_files", "stored_bytes", "reader", "tree_sha256", "ingested", "dataset_commit",
                "archive_commit"):
        value = d.get(key)
        if key == "voxel_size_nm" and value:
            value = " x ".join(f"{v:.6g}" for v in value)
        lines.append(f"  {key:14} {value}")
    lines.append(f"  {'image':14} {d['image']}")
    if d["labels"]:
        lines.append("  labels:")
        for lab in d["labels"]:
            lines.append(f"    {lab['name']}@v{lab['version']}  {lab['kind']}  {lab['path']}")
    else:
        lines.append("  labels         none")
    return "\n".join(lines)


@click.command("show")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@json_option
@handle_errors
def command(archive, name, as_json):
    """Describe acquisition NAME: image, scale, labels, commits."""
    from ..repository.archive import show_acquisition

    render(show_acquisition(archive, name), as_json, text=_text, single=True)
