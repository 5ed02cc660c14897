import click

from .base import handle_errors, json_option, render


@click.command("log")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option("-n", "--limit", type=int, help="Show at most this many commits.")
@json_option
@handle_errors
def command(archive, name, limit, as_json):
    """Show the history of acquisition NAME (commits and version tags)."""
    from ..repository.archive import acquisition_log

    def text(r):
        tags = f"  [{', '.join(r.data['tags'])}]" if r.data["tags"] else ""
        return f"{r.data['commit'][:10]}  {r.data['date']}  {r.data['author']}  {r.data['subject']}{tags}"

    render(acquisition_log(archive, name, limit), as_json, text=text)
