"""Pictures without a server: thumbnails, label overlays, the EMPIAR entry image and the
demo's front page.

* :func:`preview` (``curate preview ARCHIVE NAME [LAYER@vN]``) writes the middle slice of
  each plane (xy, xz, yz) as PNG, contrast from robust percentiles (0.5 and 99.5 %), the
  side views at the voxels' true aspect (a 40 nm z step is drawn five times as tall as
  an 8 nm pixel), and with a label version the same planes with its overlay in the
  image-label colours. The xy overlay shows the annotated slice nearest the middle.
* :func:`entry_image` writes the square picture EMPIAR shows for an entry (at least
  400 x 400, PNG): the xy middle slice with the latest ground truth over it.
* :func:`demo_report` writes ``README.md`` and ``index.html`` at the top of a demo
  folder: what was made, with pictures, and how to look further (``curate serve``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..records import Result, ok
from . import render as R
from .catalog import Catalog, Geometry, Version
from .lineage import lineage_svg

PLANE_NAMES = {"xy": "XY (a z slice)", "xz": "XZ (a y slice)", "yz": "YZ (an x slice)"}


def pick_level(geo: Geometry, plane: str, max_side: int) -> int:
    """The coarsest level whose plane is still at least ``max_side`` pixels on its long side."""
    _, r, c = R.PLANES[plane]
    best = 0
    for lv in geo.levels:
        if max(lv.shape[r], lv.shape[c]) >= max_side:
            best = lv.index
    return best


def plane_arrays(catalog: Catalog, name: str, plane: str, index0: int | None = None, max_side: int = 512,
                 version: Version | None = None) -> tuple[np.ndarray, np.ndarray | None, int, int]:
    """(image plane, label plane or None, level, level-0 index) of one whole plane."""
    from .tiles import level_index

    geo = catalog.geometry(name)
    normal, r, c = R.PLANES[plane]
    index0 = geo.shape[normal] // 2 if index0 is None else int(index0)
    level = pick_level(geo, plane, max_side)
    lv = geo.levels[level]
    region = R.plane_slices(plane, level_index(geo, level, normal, index0), (0, lv.shape[r]), (0, lv.shape[c]))
    img = R.to_plane(np.asarray(catalog.image_array(name, level)[region]), plane)
    lab = None
    if version is not None:
        lab = R.to_plane(np.asarray(catalog.label_array(name, version.address, level)[region]), plane)
    return img, lab, level, index0


def picture(catalog: Catalog, name: str, plane: str, *, index0: int | None = None, max_side: int = 512,
            version: Version | None = None, opacity: float = 0.55, window: tuple[float, float] | None = None) -> np.ndarray:
    """A grey (or RGB with ``version``) picture of a plane at true aspect."""
    geo = catalog.geometry(name)
    img, lab, level, _ = plane_arrays(catalog, name, plane, index0, max_side, version)
    lo, hi = window or R.robust_window(img)
    grey = R.to_grey(img, lo, hi)
    out = grey if lab is None else R.composite(grey, R.label_rgba(lab, version.colors, version.unlabeled), opacity)
    _, r, c = R.PLANES[plane]
    scale = geo.levels[level].scale_nm
    return R.true_aspect(out, scale[r], scale[c], max_side)


def annotated_near_middle(version: Version, depth: int) -> int:
    """The annotated z slice nearest the middle of the volume (the middle if none)."""
    zs = set(int(z) for z in version.annotated.get("slices", []))
    for box in version.annotated.get("regions", []):
        z0, z1 = box.get("z", [0, 0])
        zs.update(range(int(z0), int(z1)))
    mid = depth // 2
    return min(zs, key=lambda z: (abs(z - mid), z)) if zs else mid


def preview(archive_path: Path | str, name: str, address: str | None = None, out: Path | str | None = None,
            *, size: int = 512) -> list[Result]:
    """Write the thumbnails (and overlays of ``address``) of ``name`` into ``out``."""
    catalog = Catalog(archive_path)
    catalog.require(name)
    out_dir = Path(out) if out is not None else Path.cwd() / f"{name}-preview"
    out_dir.mkdir(parents=True, exist_ok=True)
    geo = catalog.geometry(name)
    version = catalog.version(name, address) if address else None
    window = _window(catalog, name)
    results = []
    for plane in R.PLANES:
        normal = R.PLANES[plane][0]
        index = geo.shape[normal] // 2
        path = out_dir / f"{name}_{plane}.png"
        path.write_bytes(R.encode(picture(catalog, name, plane, index0=index, max_side=size, window=window)))
        results.append(ok("preview", path, f"{PLANE_NAMES[plane]} slice {index} of {geo.shape[normal]}",
                          plane=plane, index=index, kind="image"))
        if version is not None:
            vindex = annotated_near_middle(version, geo.shape[0]) if plane == "xy" else index
            vpath = out_dir / f"{name}_{version.layer}_v{version.version}_{plane}.png"
            vpath.write_bytes(R.encode(picture(catalog, name, plane, index0=vindex, max_side=size, version=version,
                                               window=window)))
            results.append(ok("preview", vpath, f"{version.address} over {PLANE_NAMES[plane]} slice {vindex}",
                              plane=plane, index=vindex, kind="overlay", address=version.address))
    return results


def showcase(versions: Sequence[Version]) -> Version | None:
    """The ground truth a picture shows: the latest version of the ground-truth layer
    curated most (most versions; ties: the last layer by name)."""
    gts = [v for v in versions if v.kind == "ground-truth"]
    if not gts:
        return None
    count: dict[str, int] = {}
    for v in gts:
        count[v.layer] = count.get(v.layer, 0) + 1
    order = {v.layer: i for i, v in enumerate(gts)}
    layer = max(count, key=lambda k: (count[k], order[k]))
    return [v for v in gts if v.layer == layer][-1]


def _window(catalog: Catalog, name: str) -> tuple[float, float]:
    from .tiles import Tiles

    return Tiles(catalog, cache_bytes=16 * 1024**2).window(name)


def entry_image(archive_path: Path | str, name: str, out: Path | str, *, size: int = 512) -> Path:
    """The EMPIAR entry picture (``size`` >= 400 square PNG): the xy middle slice, with the
    latest ground-truth version (:func:`showcase`) over it on its annotated slice nearest the middle."""
    from PIL import Image

    catalog = Catalog(archive_path)
    catalog.require(name)
    size = max(400, int(size))
    geo = catalog.geometry(name)
    version = showcase(catalog.versions(name))
    index = annotated_near_middle(version, geo.shape[0]) if version else geo.shape[0] // 2
    pic = picture(catalog, name, "xy", index0=index, max_side=size, version=version, window=_window(catalog, name))
    canvas = Image.new("RGB", (size, size), (24, 24, 24))
    tile = Image.fromarray(pic).convert("RGB")
    canvas.paste(tile, ((size - tile.width) // 2, (size - tile.height) // 2))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path


# --- the demo's front page ------------------------------------------------------------------


def demo_report(directory: Path | str, archive: Path | str | None = None) -> list[Result]:
    """Write ``README.md`` and ``index.html`` in the demo ``directory`` (archive at
    ``directory/archive`` unless given), with previews under ``previews/``."""
    root = Path(directory).resolve()
    catalog = Catalog(archive or root / "archive")
    pics = root / "previews"
    pics.mkdir(exist_ok=True)
    sections_md, sections_html = [], []
    for s in catalog.summaries():
        versions = catalog.versions(s.name)
        shown = showcase(versions)
        made = preview(catalog.root, s.name, shown.address if shown else None, pics)
        rel = {(r.data["plane"], r.data["kind"]): Path(r.path).relative_to(root).as_posix() for r in made}
        vox = " x ".join(f"{v:g}" for v in s.voxel_size_nm)
        facts = [("Title", s.title), ("Organism", s.organism), ("Technique", s.technique),
                 ("Shape (z, y, x)", " x ".join(map(str, s.shape)) + f" {s.dtype}"), ("Voxel size (nm)", vox),
                 ("Label versions", ", ".join(f"{v.address} ({v.kind})" for v in versions) or "none")]
        found = _analyses(catalog, s.name, root)
        sections_md.append(_md_section(s.name, facts, rel, shown.address if shown else "") + _md_analyses(found))
        sections_html.append(_html_section(s.name, facts, rel, versions, found))
    deposits = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("deposit-"))
    archive_rel = Path(catalog.root).relative_to(root).as_posix() if Path(catalog.root).is_relative_to(root) \
        else str(catalog.root)
    readme = _readme(catalog.title, archive_rel, sections_md, deposits, root)
    (root / "README.md").write_text(readme, encoding="utf-8")
    (root / "index.html").write_text(_index(catalog.title, archive_rel, sections_html, deposits, root),
                                     encoding="utf-8")
    return [ok("demo-report", root / "README.md", "wrote README.md and index.html with previews of "
               f"{len(sections_md)} acquisition(s)", index=str(root / "index.html"), previews=str(pics))]


def _md_section(name: str, facts, rel, overlay_of: str) -> str:
    lines = [f"## {name}", ""]
    lines += [f"- **{k}:** {v}" for k, v in facts]
    lines.append("")
    lines.append(" ".join(f"![{name} {p}]({rel[(p, 'image')]})" for p in R.PLANES if (p, "image") in rel))
    over = [rel[(p, "overlay")] for p in R.PLANES if (p, "overlay") in rel]
    if over:
        lines += ["", f"The latest ground truth, {overlay_of}, over the image:", "",
                  " ".join(f"![{overlay_of}]({o})" for o in over)]
    return "\n".join(lines) + "\n"


def _analyses(catalog: Catalog, name: str, root: Path) -> list[tuple[Any, str, list[str]]]:
    """(section, report, plots) of each analysis run, oldest first, paths relative to ``root``."""
    from .analyses import PAGE_PLOTS, section

    acq = catalog.archive.acquisition_path(name).resolve()
    base = acq.relative_to(root).as_posix() if acq.is_relative_to(root) else acq.as_posix()
    out = []
    for r in reversed(catalog.analysis_runs(name)):
        d = r.details
        plots = [f"{base}/{p}" for p in d.files.plots if Path(p).name in PAGE_PLOTS]
        out.append((section(name, r), f"{base}/{d.files.report}" if d.files.report else "", plots))
    return out


def _md_analyses(found) -> str:
    if not found:
        return ""
    lines = ["", "### Analyses", ""]
    for sec, report, plots in found:
        lines += [f"**{sec.title}**" + (f" ([report]({report}))" if report else ""), ""]
        lines += [f"{'  ' if k.startswith(' ') else ''}- {k.strip()}: {v}" for k, v in sec.facts]
        lines += ["", " ".join(f"![{Path(p).name}]({p})" for p in plots), ""]
    return "\n".join(lines) + "\n"


def _html_section(name: str, facts, rel, versions: Sequence[Version], found=()) -> str:
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts)
    imgs = "".join(f'<figure><img src="{e(rel[(p, k)])}" alt="{e(name)} {p} {k}"><figcaption>{e(PLANE_NAMES[p])}'
                   f'{" with labels" if k == "overlay" else ""}</figcaption></figure>'
                   for k in ("image", "overlay") for p in R.PLANES if (p, k) in rel)
    svg = lineage_svg(versions)
    parts = []
    for sec, report, plots in found:
        head = f'<a href="{e(report)}">{e(sec.title)}</a>' if report else e(sec.title)
        frows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in sec.facts)
        pics = "".join(f'<figure><img src="{e(p)}" alt="{e(Path(p).name)}"></figure>' for p in plots)
        parts.append(f"<h4>{head}</h4><table>{frows}</table><div class=pics>{pics}</div>")
    return (f"<section><h2>{e(name)}</h2><table>{rows}</table><div class=pics>{imgs}</div>"
            + (f"<h3>Label versions</h3>{svg}" if svg else "")
            + (f"<h3>Analyses</h3>{''.join(parts)}" if parts else "") + "</section>")


def _deposit_line(p: Path, root: Path) -> str:
    return f"- `{p.relative_to(root).as_posix()}/`: " + {
        "deposit-empiar": "an EMPIAR deposition (JSON, image sets, entry thumbnail, checksums)",
        "deposit-ro-crate": "an RO-Crate with the run records as CreateActions",
    }.get(p.name, "a package")


def _readme(title: str, archive_rel: str, sections: list[str], deposits: list[Path], root: Path) -> str:
    dep = "\n".join(_deposit_line(p, root) for p in deposits) or "- none"
    inputs = ""
    if (root / "acquisition").is_dir():
        inputs = ("- `acquisition/`: the generated phantom as an instrument would deliver it, the input of the "
                  "demo: `images/` (one TIFF per z slice), `metadata.yaml` (the filled metadata template), "
                  "`ground_truth/` (the phantom's true nuclear envelope, pores and nuclei as mask slices, imported "
                  "as the `envelope`, `pores` and `nucleus` label layers; `README.txt` gives the true counts)\n")
    return (f"# Curation demo: {title}\n\nWhat `curate demo` made in this folder. Open `index.html` for the same "
            f"page in a browser, or look inside with the web catalog:\n\n    curate serve {archive_rel}\n\n"
            f"## What is here\n\n{inputs}- `{archive_rel}/`: the DataLad archive (OME-Zarr 0.5 images, versioned "
            f"label layers, provenance; `acquisitions/NAME/` holds one acquisition)\n{dep}\n- `previews/`: the "
            f"pictures below (`curate preview`)\n- `index.html`: this page for a browser\n\n"
            + "\n".join(sections))


def _index(title: str, archive_rel: str, sections: list[str], deposits: list[Path], root: Path) -> str:
    e = html.escape
    dep = "".join(f"<li><a href=\"{e(p.relative_to(root).as_posix())}/\">{e(p.name)}</a></li>" for p in deposits)
    style = ("body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}"
             "table{border-collapse:collapse;margin:.5rem 0}th{text-align:left;padding:2px 12px 2px 0;color:#555}"
             ".pics{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}figure{margin:0}"
             "figure img{max-height:260px;border:1px solid #ccc}figcaption{font-size:.8rem;color:#555}"
             "code{background:#f3f3f3;padding:1px 4px}")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(title)}</title>"
            f"<style>{style}</style></head><body><h1>Curation demo: {e(title)}</h1>"
            f"<p>The archive is in <code>{e(archive_rel)}/</code>. Browse it, compare label versions and paint "
            f"ground truth with <code>curate serve {e(archive_rel)}</code> (add <code>--allow-edit</code> to paint)."
            f"</p><h2>Deposits</h2><ul>{dep or '<li>none</li>'}</ul>{''.join(sections)}</body></html>\n")
