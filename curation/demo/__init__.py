"""Generated demonstration data: a FIB-SEM-like phantom with known ground truth."""

from curation.demo.phantom import (
    Phantom,
    PhantomSpec,
    PhantomSpecError,
    generate_volume,
    nucleus_mask,
    phantom_metadata,
    write_phantom,
)

__all__ = [
    "Phantom",
    "PhantomSpec",
    "PhantomSpecError",
    "generate_volume",
    "nucleus_mask",
    "phantom_metadata",
    "write_phantom",
]
