"""The ``curate`` command. Commands live one per module and import the library lazily,
so ``curate --help`` never loads torch, dask or DataLad."""

from __future__ import annotations

import importlib

import click

from .. import __version__

COMMANDS = {
    "init": "cmd_init",
    "metadata": "cmd_metadata",
    "ingest": "cmd_ingest",
    "list": "cmd_list",
    "show": "cmd_show",
    "log": "cmd_log",
    "verify": "cmd_verify",
    "demo": "cmd_demo",
    "run": "cmd_run",
    "schemas": "cmd_schemas",
    "labels": "cmd_labels",
    "package": "cmd_package",
    "archive": "cmd_archive",
    "preview": "cmd_preview",
    "serve": "cmd_serve",
    "analyze": "cmd_analyze",
    "evaluate": "cmd_evaluate",
    "train": "cmd_train",
    "segment": "cmd_segment",
    "reproduce": "cmd_reproduce",
    "models": "cmd_models",
    "experiment": "cmd_experiment",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n in COMMANDS if self._module(n) is not None]

    def _module(self, name: str):
        mod = COMMANDS.get(name)
        if mod is None:
            return None
        try:
            return importlib.import_module(f"curation.cli.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name == f"curation.cli.{mod}":
                return None
            raise

    def get_command(self, ctx: click.Context, name: str):
        module = self._module(name)
        return getattr(module, "command", None) if module else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curate")
def cli() -> None:
    """Curate volume-EM acquisitions into a FAIR, DataLad-versioned OME-Zarr archive."""


def main() -> None:
    try:
        cli.main(prog_name="curate")
    except BrokenPipeError:  # click handles EPIPE itself; this catches what it lets through
        _quiet_pipe()


def _quiet_pipe() -> None:
    """Exit quietly when stdout's reader has gone (``curate labels list ... | head -3``)."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
    except (OSError, ValueError):
        pass
    raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
