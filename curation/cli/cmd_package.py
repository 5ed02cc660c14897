import click

from .base import handle_errors, json_option, render

FORMATS = ["empiar", "ro-crate", "bagit", "datacite"]


def _labels(values: tuple[str, ...]) -> list[str] | None:
    out = [v.strip() for text in values for v in text.split(",") if v.strip()]
    return out or None


def _text(r) -> str:
    d = r.data
    lines = [f"{r.message}", f"  written to {r.path}"]
    for s in d.get("imagesets", []):
        lines.append(f"  image set {s['directory']}: {s['files']} files  {s['name']}")
    if d.get("labels"):
        lines.append(f"  label versions: {', '.join(d['labels'])}")
    if d.get("identifier"):
        lines.append(f"  identifier: {d['identifier']}")
    if d.get("official_schema"):
        lines.append(f"  validated with EMPIAR's schema {d['official_schema']}")
    return "\n".join(lines)


@click.command("package")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS, case_sensitive=False),
              help="empiar: EMPIAR deposition; ro-crate: RO-Crate with the data; bagit: BagIt bag; "
              "datacite: DataCite metadata for a DOI.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="New (or empty) folder to write the package into; never written over.")
@click.option("--labels", "labels", multiple=True, metavar="LAYER[@vN]",
              help="Label versions to include (repeat, or separate with commas). Default: EMPIAR takes the "
              "latest version of every layer, the other formats every version.")
@click.option("--empiar-schema", type=click.Path(exists=True, dir_okay=False),
              help="EMPIAR's empiar_deposition.schema.json to validate against as well, as published in "
              "the emdb-empiar/empiar-depositor GitHub repository (default: $CURATION_EMPIAR_SCHEMA).")
@click.option("--experiment-type", type=int, help="EMPIAR experiment type code, overriding the one derived "
              "from the technique (SBF-SEM 4, FIB-SEM 5, ATUM-SEM 11).")
@click.option("--doi", help="DOI of the dataset, when it has one (DataCite, RO-Crate, BagIt).")
@click.option("--publisher", help="Publisher for DataCite and RO-Crate (default: the contact's affiliation).")
@json_option
@handle_errors
def command(archive, name, fmt, out, labels, empiar_schema, experiment_type, doi, publisher, as_json):
    """Write acquisition NAME of ARCHIVE as a deposition package into --out."""
    from ..packaging import package

    records = package(archive, name, fmt.lower(), out, labels=_labels(labels), empiar_schema=empiar_schema,
                      experiment_type=experiment_type, doi=doi, publisher=publisher)
    render(records, as_json, text=_text, single=True)
