"""Network architectures curation trains, each a frozen file that imports only torch.

A model package bundles its architecture file verbatim (bioimage.io ``pytorch_state_dict``
weights name it with its sha256). Curation never executes the file found in a package: it
looks the file's sha256 up in :data:`KNOWN` and builds the network from its own copy, so a
package cannot smuggle code in. A file listed here is never edited; a changed architecture
is a new file (``unet_v2.py``) with a new entry, and old packages keep loading.
"""

from __future__ import annotations

import hashlib
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..pipeline import Architecture

HERE = Path(__file__).resolve().parent

#: sha256 of an architecture file -> (file name, module, callable)
KNOWN: dict[str, tuple[str, str, str]] = {
    "d1b6f7f5049233cf38c65fc602881384b5871d05a3696882330b4be2edfb6108": ("unet_v1.py", "unet_v1", "UNet"),
}
#: the architecture new models are built with
CURRENT = "unet_v1.py"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def current() -> tuple[Path, str, str]:
    """(path of the current architecture file, its sha256, its callable)."""
    path = HERE / CURRENT
    for sha, (name, _, call) in KNOWN.items():
        if name == CURRENT:
            return path, sha, call
    raise KeyError(CURRENT)


def network_for(sha256: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    """Build the network of a known architecture file (by its sha256) with ``kwargs``."""
    name, module, call = KNOWN[sha256]
    cls = getattr(import_module(f"{__name__}.{module}"), call)
    return cls(**kwargs)


def build_network(arch: Architecture) -> torch.nn.Module:
    """A freshly initialised network of the current architecture file."""
    _, sha, _ = current()
    return network_for(sha, arch.kwargs())
