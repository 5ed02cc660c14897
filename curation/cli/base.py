"""What every command shares: rendering result records, mapping errors, exit codes.

Exit codes (as DataLad): 0 success, 1 when any record failed or a CurationError was
raised, 2 for usage errors (click), 3 for Ctrl-C. Tracebacks of unexpected errors go
to a log file, not the terminal.

Library chatter goes to the log too (:func:`route_library_logs`): Python warnings
(tifffile's "incorrect StripByteCounts count"), Dask's worker tracebacks and notices.
An error is one line on stderr, with nothing printed before it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print result records as JSON.")


#: where library warnings and Dask's log go (CURATION_LOG overrides)
def log_path() -> str:
    env = os.environ.get("CURATION_LOG")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "curation", "curate.log")


_ROUTED: list[Any] = []


def route_library_logs() -> None:
    """Send warnings and library logs (tifffile, distributed, bokeh) to the log file.

    A handler on the root logger before distributed is imported also stops distributed
    from adding its own stderr handler (it adds one only when the root has none).
    """
    import logging

    if _ROUTED:
        return
    path = log_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, delay=True)
    except OSError:  # an unwritable home: drop the chatter rather than print it
        handler = logging.NullHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    for name in ("distributed", "tifffile", "bokeh", "tornado"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):  # already imported: drop its stderr handler
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stderr, sys.stdout):
                lg.removeHandler(h)
        lg.propagate = True
    _ROUTED.append(handler)


def _log_traceback() -> str:
    fd, path = tempfile.mkstemp(prefix="curate-error-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        traceback.print_exc(file=fh)
    return path


def render(records: Iterable[Any], as_json: bool, *, text: Callable[[Any], str] | None = None,
           single: bool = False) -> None:
    """Print records; return normally. ``single``: --json prints one object, not a list."""
    records = list(records)
    if as_json:
        payload = [r.to_json() for r in records]
        if single and len(payload) == 1:
            d = payload[0]
            click.echo(json.dumps({**d.get("data", {}), "status": d["status"], "action": d["action"],
                                   "message": d["message"]}, indent=2, default=str))
        else:
            click.echo(json.dumps(payload, indent=2, default=str))
    else:
        for r in records:
            line = text(r) if text else default_text(r)
            if line:
                click.echo(line)
    if any(r.failed for r in records):
        raise SystemExit(1)


def default_text(r: Any) -> str:
    status = r.status.value
    path = f" {r.path}" if r.path else ""
    msg = f" ({r.message})" if r.message else ""
    return f"{r.action}({status}):{path}{msg}"


def _log_warnings(caught: list[warnings.WarningMessage]) -> str:
    """Write library warnings caught during a failed command to a log; the note for its one line."""
    if not caught:
        return ""
    fd, path = tempfile.mkstemp(prefix="curate-warnings-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        for w in caught:
            fh.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line))
    return f" [{len(caught)} library warning{'s' * (len(caught) != 1)} in {path}]"


def _replay(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library exceptions into one-line messages and exit codes.

    Library warnings (tifffile, Dask ...) raised while the command runs are held back: a
    command that succeeds shows them after its work, one that fails writes them to a log
    named at the end of its one error line instead of printing them before it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import CurationError

        as_json = kwargs.get("as_json", False)
        route_library_logs()
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                result = fn(*args, **kwargs)
            _replay(caught)
            return result
        except CurationError as exc:
            if as_json:
                click.echo(json.dumps({"status": "error", **exc.to_dict()}, indent=2, default=str))
            click.echo(f"error: {exc.one_line()}{_log_warnings(caught)}", err=True)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            click.echo("interrupted; re-run the same command to resume where it stopped", err=True)
            raise SystemExit(3) from None
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            _replay(caught)
            raise
        except BrokenPipeError:  # the reader went away (`| head`): main() exits quietly
            raise
        except OSError as exc:  # the file system refused (permissions, a full disk, /proc): not a bug
            path = _log_traceback()
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}the file system refused: {exc.strerror or exc} "
                       f"(details in {path}){_log_warnings(caught)}", err=True)
            raise SystemExit(1) from None
        except MemoryError:
            path = _log_traceback()
            click.echo("error: the command ran out of memory; check that the input is what you meant, or "
                       f"run it on a machine with more memory (details in {path})", err=True)
            raise SystemExit(1) from None
        except Exception as exc:  # a bug: keep the traceback, show one line
            path = _log_traceback()
            click.echo(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
                       f"(traceback in {path}){_log_warnings(caught)}", err=True)
            raise SystemExit(1) from None

    return wrapper


def is_terminal() -> bool:
    return sys.stderr.isatty() and os.environ.get("CI", "") == ""
