"""OME-NGFF 0.5 attributes for images and label images, and their validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import VerificationError
from .layout import PyramidPlan

NGFF_VERSION = "0.5"
AXES = [
    {"name": "z", "type": "space", "unit": "nanometer"},
    {"name": "y", "type": "space", "unit": "nanometer"},
    {"name": "x", "type": "space", "unit": "nanometer"},
]


def _r(v: float) -> float:
    """Round away binary noise (8.000000000001 nm) so metadata reads cleanly."""
    return float(f"{v:.10g}")


def multiscales(plan: PyramidPlan, name: str, *, kind: str = "image", extra: dict | None = None) -> dict:
    datasets = []
    for lv in plan.levels:
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [_r(s) for s in lv.scale_nm]}]
        if any(lv.translation_nm):
            transforms.append({"type": "translation", "translation": [_r(t) for t in lv.translation_nm]})
        datasets.append({"path": lv.path, "coordinateTransformations": transforms})
    ms: dict[str, Any] = {
        "name": name,
        "axes": AXES,
        "datasets": datasets,
        "type": "mode" if kind == "label" else "mean",
        "metadata": {
            "description": "mode of each window (labels)" if kind == "label"
            else "mean of each window; Z halved only once no coarser than XY",
            "method": "curation.omezarr.downsample." + ("mode_downsample" if kind == "label" else "mean_downsample"),
        },
    }
    ome: dict[str, Any] = {"version": NGFF_VERSION, "multiscales": [ms]}
    if extra:
        ome.update(extra)
    return {"ome": ome}


def validate_image(root: Path | str, path: str = "") -> None:
    """Validate an OME-Zarr image group with ome-zarr-models; raise VerificationError."""
    import zarr
    from ome_zarr_models.v05.image import Image

    try:
        group = zarr.open_group(str(root), path=path, mode="r", zarr_format=3)
        Image.from_zarr(group)
    except Exception as exc:  # pydantic.ValidationError and zarr errors alike
        raise VerificationError(f"not a valid OME-Zarr {NGFF_VERSION} image: {_first_line(exc)}",
                                path=str(Path(root) / path)) from exc


def validate_label(root: Path | str, path: str) -> None:
    import zarr
    from ome_zarr_models.v05.image_label import ImageLabel

    try:
        group = zarr.open_group(str(root), path=path, mode="r", zarr_format=3)
        ImageLabel.from_zarr(group)
    except Exception as exc:
        raise VerificationError(f"not a valid OME-Zarr {NGFF_VERSION} label image: {_first_line(exc)}",
                                path=str(Path(root) / path)) from exc


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:300]
