"""The web catalog's guards: which hosts may address it, what an edit must carry, and the
headers every answer gets.

* **Bind and Host.** The server binds to 127.0.0.1 by default. Requests must name an
  allowed host in their ``Host`` header (the bound address, ``localhost``, loopback
  literals), which defeats DNS-rebinding pages that would otherwise read the archive
  through the user's browser.
* **Read-only by default.** Without ``--allow-edit`` every write route answers 403.
* **CSRF.** With ``--allow-edit`` the server makes a random token at start; pages carry
  it in a ``<meta>`` tag and writes must send it back in ``X-CSRF-Token`` (compared in
  constant time), as ``application/json``, with an ``Origin`` (when sent) of this server.
* **Headers.** A strict Content-Security-Policy on our pages (scripts only from this
  origin, no inline script), ``nosniff``, no framing, no referrer. The bundled
  neuroglancer client gets its own policy (it needs WebAssembly and workers).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from ..errors import ForbiddenError, RequestTooLargeError

#: bytes of a write request's body (an edit of the largest allowed size fits easily)
MAX_BODY = 8 * 1024**2
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
CSP_NEUROGLANCER = ("default-src 'self'; script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
                    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
                    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> list[str]:
    """Host names a request may carry: the bound one, loopback names, and ``extra``.
    Binding to every interface (0.0.0.0, ::) allows any host: the user chose to publish."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    hosts = {host, *LOOPBACK, *extra}
    if ":" in host and not host.startswith("["):
        hosts.add(f"[{host}]")
    return sorted(hosts)


class EditGuard:
    """Decides whether a write request may proceed."""

    def __init__(self, allow_edit: bool) -> None:
        self.allow_edit = allow_edit
        self.token = secrets.token_urlsafe(32) if allow_edit else ""

    def check(self, headers: Mapping[str, str], host_url: str) -> None:
        """Raise ForbiddenError unless this write is allowed (see the module docstring)."""
        if not self.allow_edit:
            raise ForbiddenError("this catalog is read-only", hint="restart it with `curate serve --allow-edit`")
        sent = headers.get("x-csrf-token", "")
        if not sent or not hmac.compare_digest(sent.encode(), self.token.encode()):
            raise ForbiddenError("the edit lacks this server's CSRF token", field="X-CSRF-Token",
                                 hint="reload the page and try again")
        origin = headers.get("origin")
        if origin and origin != "null":
            want = urlsplit(host_url)
            got = urlsplit(origin)
            if (got.scheme, got.netloc) != (want.scheme, want.netloc):
                raise ForbiddenError("the edit comes from another origin", field="Origin",
                                     expected=f"{want.scheme}://{want.netloc}", found=origin)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ForbiddenError("an edit is sent as JSON", field="Content-Type", expected="application/json",
                                 found=ctype or "nothing")


def check_body_size(headers: Mapping[str, str], body: bytes | None = None) -> None:
    declared = headers.get("content-length")
    size = len(body) if body is not None else int(declared) if declared and declared.isdigit() else 0
    if size > MAX_BODY:
        raise RequestTooLargeError("the request is too large", field="body", expected=f"at most {MAX_BODY} bytes",
                                   found=size, hint="save the edit in several parts")


def page_headers(neuroglancer: bool = False) -> dict[str, str]:
    return {"Content-Security-Policy": CSP_NEUROGLANCER if neuroglancer else CSP,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY"}
