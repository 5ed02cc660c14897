"""What an object analysis leaves behind: tables, plots and one self-contained HTML page.

:func:`write_report` writes into a folder (phase 2 points it at a staging folder of the
write transaction):

* ``objects.parquet`` / ``objects.csv``: one row per object (see
  :mod:`curation.analysis.objects`); the Parquet schema metadata holds the settings;
* ``parents.parquet`` / ``parents.csv``: one row per parent, when grouped;
* ``sizes.png``: histogram of the diameter the plausibility rule uses (else the
  sphere-equivalent diameter), the plausible range shaded;
* ``parents.png``: objects per parent and density per µm², the plausible band shaded;
* ``montage.png``: up to six z slices through the objects, the image in grey with the
  objects in colour and the parents' outline;
* ``report.html``: all of the above on one page, images inlined as data URIs, no
  external resources.

Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot state), so
reports can be written from worker threads.
"""

from __future__ import annotations

import base64
import colorsys
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..blocks import read_region
from .objects import ObjectAnalysis, Table

MAX_HTML_ROWS = 200
MONTAGE_TILES = 6
MONTAGE_WINDOW = 160


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    tables: dict[str, Path]
    plots: dict[str, Path]
    html: Path

    def all(self) -> list[Path]:
        return [*self.tables.values(), *self.plots.values(), self.html]


def summary(analysis: ObjectAnalysis) -> dict[str, Any]:
    """A JSON-safe digest: counts, settings, per-parent figures, findings."""
    o = analysis.objects
    col = analysis.settings.get("diameter_column") or "equivalent_diameter_nm"
    d = o[col][np.isfinite(o[col])] if len(o) else np.zeros(0)
    out: dict[str, Any] = {
        "counts": dict(analysis.counts),
        "settings": dict(analysis.settings),
        "objects": len(o),
        "touching_border": int(o["touches_border"].sum()) if len(o) else 0,
        "diameter_column": col,
        "diameter_nm_median": _num(np.median(d)) if len(d) else None,
        "volume_nm3_median": _num(np.median(o["volume_nm3"])) if len(o) else None,
        "surface_method": analysis.surface_method,
        "parents": analysis.parents.rows() if analysis.parents is not None else None,
        "findings": [{"level": f.level, "subject": f.subject, "quantity": f.quantity, "message": f.message,
                      "value": _num(f.value), "expected": list(f.expected)} for f in analysis.findings],
    }
    return out


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# --- tables --------------------------------------------------------------------------------------


def write_tables(analysis: ObjectAnalysis, folder: Path) -> dict[str, Path]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    meta = {"curation.settings": json.dumps(analysis.settings), "curation.counts": json.dumps(analysis.counts),
            "curation.surface_method": str(analysis.surface_method)}
    out = {}
    tables: list[tuple[str, Table | None]] = [("objects", analysis.objects), ("parents", analysis.parents)]
    for name, table in tables:
        if table is None:
            continue
        arrow = table.to_arrow(meta)
        out[f"{name}.parquet"] = folder / f"{name}.parquet"
        pq.write_table(arrow, out[f"{name}.parquet"])
        out[f"{name}.csv"] = folder / f"{name}.csv"
        pacsv.write_csv(arrow, out[f"{name}.csv"])
    return out


# --- plots --------------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_sizes(analysis: ObjectAnalysis, path: Path) -> Path:
    """Histogram of object diameters, with the plausible range shaded."""
    o = analysis.objects
    col = analysis.settings.get("diameter_column") or "equivalent_diameter_nm"
    rule = _rule(analysis)
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    whole = ~o["touches_border"] if len(o) else np.zeros(0, bool)
    d_in = o[col][whole & np.isfinite(o[col])] if len(o) else np.zeros(0)
    d_cut = o[col][~whole & np.isfinite(o[col])] if len(o) else np.zeros(0)
    both = np.concatenate([d_in, d_cut])
    if rule and rule.get("diameter_nm"):
        lo, hi = rule["diameter_nm"]
        ax.axvspan(lo, hi, color="#2ca02c", alpha=0.12, label=f"plausible {lo:g}-{hi:g} nm")
    if len(both):
        bins = np.histogram_bin_edges(both, bins=min(40, max(8, int(np.sqrt(len(both))) * 2)))
        ax.hist([d_in, d_cut], bins=bins, stacked=True, color=["#1f77b4", "#aec7e8"],
                label=["whole objects", "cut by the volume's border"])
        med = float(np.median(d_in)) if len(d_in) else float(np.median(both))
        ax.axvline(med, color="#d62728", lw=1.5, label=f"median {med:.0f} nm")
    expected = analysis.extra.get("expected")
    if expected is not None and getattr(expected, "diameter_nm", None):
        ax.axvline(expected.diameter_nm, color="#333333", lw=1.2, ls="--",
                   label=f"expected {expected.diameter_nm:g} nm")
    else:
        ax.text(0.5, 0.5, "no objects", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(col.replace("_nm", " (nm)").replace("_", " "))
    ax.set_ylabel("objects")
    ax.set_title(f"Object size: {len(o)} objects")
    ax.legend(fontsize=8, frameon=False)
    fig.savefig(path)
    return path


def plot_parents(analysis: ObjectAnalysis, path: Path) -> Path:
    """Objects per parent (left) and density per µm² of parent surface (right), the
    plausible density shaded."""
    p = analysis.parents
    assert p is not None
    rule = _rule(analysis)
    fig = _figure(7.6, 3.4)
    left, right = fig.subplots(1, 2)
    x = np.arange(len(p))
    names = [str(i) for i in p["parent_id"]]
    rot = 90 if len(p) > 15 else 0
    left.bar(x, p["count"], width=0.6 if len(p) > 1 else 0.35, color="#1f77b4")
    left.set_xticks(x, names, rotation=rot, fontsize=8)
    left.set_xlim(-0.75, len(p) - 0.25)
    left.set_xlabel("parent id")
    left.set_ylabel("objects")
    left.set_title("Objects per parent", fontsize=10)
    if rule and rule.get("density_per_um2"):
        lo, hi = rule["density_per_um2"]
        right.axhspan(lo, hi, color="#2ca02c", alpha=0.12, label=f"plausible {lo:g}-{hi:g}")
    right.plot(x, p["density_per_um2"], "o", color="#d62728", ms=7, label="measured")
    expected = analysis.extra.get("expected")
    want = getattr(expected, "density_per_um2", None) if expected is not None else None
    if want:
        right.axhline(want, color="#333333", lw=1.2, ls="--", label=f"expected {want:.3g}")
    for xi, d in zip(x, p["density_per_um2"]):
        if math.isfinite(d):
            right.annotate(f"{d:.1f}", (xi, d), textcoords="offset points", xytext=(8, -3), fontsize=8)
    dens = p["density_per_um2"][np.isfinite(p["density_per_um2"])]
    top = max([float(dens.max()) if len(dens) else 0.0] + ([float(want)] if want else [])
              + ([rule["density_per_um2"][1]] if rule and rule.get("density_per_um2") else []))
    right.set_ylim(0, top * 1.15 or 1)
    right.set_xticks(x, names, rotation=rot, fontsize=8)
    right.set_xlim(-0.75, len(p) - 0.25)
    right.set_xlabel("parent id")
    right.set_ylabel("objects per µm²")
    right.set_title(f"Density on the parent surface ({analysis.surface_method})", fontsize=10)
    right.legend(fontsize=8, frameon=False, loc="upper right")
    fig.savefig(path)
    return path


def _rgb(k: np.ndarray) -> np.ndarray:
    """A distinct bright colour per id (golden-ratio hues), as in the label layers."""
    h = (k * 0.618033988749895) % 1.0
    s = 0.65 + 0.3 * ((k * 0.38196601125) % 1.0)
    return np.array([colorsys.hsv_to_rgb(a, b, 0.95) for a, b in zip(h, s)]).reshape(-1, 3)


def _tiles(analysis: ObjectAnalysis, shape: tuple[int, int, int], n: int, window: int):
    """(z, y slice, x slice) of up to ``n`` tiles through the objects: z at quantiles of
    the objects' centroids, each window centred on the object nearest that quantile."""
    o = analysis.objects
    if not len(o):
        return [(shape[0] // 2, slice(0, min(window, shape[1])), slice(0, min(window, shape[2])))]
    zc = (o["bbox_z0"] + o["bbox_z1"] - 1) // 2
    yc = (o["bbox_y0"] + o["bbox_y1"]) // 2
    xc = (o["bbox_x0"] + o["bbox_x1"]) // 2
    order = np.argsort(zc, kind="stable")
    picks = sorted({int(order[int(round(q * (len(order) - 1)))]) for q in np.linspace(0, 1, n)})
    out, seen = [], set()
    for i in picks:
        wy, wx = min(window, shape[1]), min(window, shape[2])
        y0 = int(np.clip(yc[i] - wy // 2, 0, shape[1] - wy))
        x0 = int(np.clip(xc[i] - wx // 2, 0, shape[2] - wx))
        key = (int(zc[i]), y0 // max(wy // 4, 1), x0 // max(wx // 4, 1))
        if key in seen:  # two objects in nearly the same window: one tile
            continue
        seen.add(key)
        out.append((int(zc[i]), slice(y0, y0 + wy), slice(x0, x0 + wx)))
    return out


def plot_montage(analysis: ObjectAnalysis, path: Path, *, image: Any = None, parents: Any = None,
                 tiles: int = MONTAGE_TILES, window: int = MONTAGE_WINDOW) -> Path:
    """Slices through the objects: image in grey, objects in colour, parents outlined."""
    from scipy import ndimage

    labels = analysis.labels
    shape = tuple(int(s) for s in labels.shape)
    chosen = _tiles(analysis, shape, tiles, window)  # type: ignore[arg-type]
    cols = min(3, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig = _figure(3.2 * cols, 3.35 * rows)
    vs = analysis.settings["voxel_size_nm"]
    for k, (z, ys, xs) in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, k + 1)
        region = (slice(z, z + 1), ys, xs)
        lab = read_region(labels, region)[0].astype(np.int64)
        lab[lab == labels.unlabeled] = 0
        if image is not None:
            grey = read_region(image, region)[0].astype(np.float32)
            lo, hi = np.percentile(grey, [1, 99])
            grey = np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1)
        else:
            grey = np.zeros(lab.shape, np.float32)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        ids = np.unique(lab[lab > 0])
        if len(ids):
            lut = np.zeros((int(ids.max()) + 1, 3))
            lut[ids] = _rgb(ids)
            colour = lut[lab]
            inside = lab > 0
            edge = inside & ~ndimage.binary_erosion(inside)
            rgb[inside] = 0.55 * rgb[inside] + 0.45 * colour[inside]
            rgb[edge] = colour[edge]
        if parents is not None:
            par = read_region(parents, region)[0]
            outline = par != ndimage.grey_erosion(par, size=3)
            outline &= par > 0
            rgb[outline] = (1.0, 0.85, 0.1)
        ax.imshow(rgb, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"z {z} ({z * vs[0]:.0f} nm) · {len(ids)} object(s)", fontsize=8)
        bar_nm = _bar_length(xs.stop - xs.start, vs[2])
        n_px = bar_nm / vs[2]
        h = lab.shape[0]
        ax.plot([4, 4 + n_px], [h - 0.04 * h] * 2, color="white", lw=2.5)
        ax.text(4 + n_px / 2, h - 0.07 * h, f"{bar_nm:g} nm", color="white", ha="center", va="bottom", fontsize=7)
    fig.suptitle("Objects in colour" + (", parents outlined in yellow" if parents is not None else ""), fontsize=9)
    fig.savefig(path)
    return path


def _bar_length(width_px: int, nm_per_px: float) -> float:
    target = width_px * nm_per_px / 4
    mag = 10 ** math.floor(math.log10(target))
    return max(m * mag for m in (1, 2, 5) if m * mag <= target)


def _rule(analysis: ObjectAnalysis) -> dict[str, Any] | None:
    from .objects import PLAUSIBILITY

    name = analysis.settings.get("plausibility")
    rule = analysis.extra.get("plausibility_rule") or (PLAUSIBILITY.get(name) if name else None)
    if rule is None:
        return None
    return {"diameter_nm": rule.diameter_nm, "density_per_um2": rule.density_per_um2}


# --- the page ------------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title|e }}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#666} table{border-collapse:collapse;font-size:12.5px;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right} th{background:#f4f4f4}
td.l,th.l{text-align:left} .flag{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em .8em;margin:.4em 0}
.ok{background:#eef8ee;border-left:4px solid #3a3;padding:.5em .8em;margin:.4em 0}
.kv td:first-child{text-align:left;color:#555} img{max-width:100%;border:1px solid #eee;margin:.3em 0}
.grid{display:flex;flex-wrap:wrap;gap:1em} .grid img{max-width:520px} .scroll{max-height:420px;overflow:auto}
</style></head><body>
<h1>{{ title|e }}</h1>
<div class="sub">{{ subtitle|e }}</div>
<h2>Summary</h2>
<p>{{ headline|e }}</p>
{% if findings %}{% for f in findings %}<div class="flag"><b>{{ f.subject|e }}</b>: {{ f.message|e }}</div>{% endfor %}
{% elif rule %}<div class="ok">All results within the plausible ranges for {{ rule|e }}.</div>{% endif %}
{% if agreement %}<h2>Agreement with known values</h2>
<p class="sub">Compared with {{ agreement.source|e }}.</p>
<table><tr><th class="l">quantity</th><th>expected</th><th>measured</th><th>tolerance</th><th class="l">verdict</th><th class="l">measured as</th></tr>
{% for r in agreement.rows %}<tr><td class="l">{{ r[0]|e }}</td><td>{{ r[1]|e }}</td><td>{{ r[2]|e }}</td><td>{{ r[3]|e }}</td><td class="l">{{ r[4]|e }}</td><td class="l">{{ r[5]|e }}</td></tr>{% endfor %}
</table>{% endif %}
<table class="kv">{% for k, v in facts %}<tr><td>{{ k|e }}</td><td class="l">{{ v|e }}</td></tr>{% endfor %}</table>
<h2>Plots</h2>
<div class="grid">{% for name, uri in plots if name != "montage.png" %}<img alt="{{ name|e }}" src="{{ uri }}">{% endfor %}</div>
{% for name, uri in plots if name == "montage.png" %}<img alt="{{ name|e }}" src="{{ uri }}">{% endfor %}
{% if parents %}<h2>Per parent</h2>
<div class="scroll"><table><tr>{% for c in parents.header %}<th>{{ c|e }}</th>{% endfor %}</tr>
{% for r in parents.rows %}<tr>{% for v in r %}<td>{{ v|e }}</td>{% endfor %}</tr>{% endfor %}</table></div>{% endif %}
<h2>Objects</h2>
<p class="sub">{{ objects.note|e }}</p>
<div class="scroll"><table><tr>{% for c in objects.header %}<th>{{ c|e }}</th>{% endfor %}</tr>
{% for r in objects.rows %}<tr>{% for v in r %}<td>{{ v|e }}</td>{% endfor %}</tr>{% endfor %}</table></div>
<h2>Settings</h2>
<table class="kv">{% for k, v in settings %}<tr><td>{{ k|e }}</td><td class="l">{{ v|e }}</td></tr>{% endfor %}</table>
<p class="sub">Tables: {{ files|join(", ")|e }}. Made by {{ tool|e }}.</p>
</body></html>
"""

_OBJECT_COLUMNS = ("id", "voxels", "volume_nm3", "equivalent_diameter_nm", "disc_diameter_nm", "thickness_nm",
                   "centroid_z_nm", "centroid_y_nm", "centroid_x_nm", "touches_border", "parent_id")
_PARENT_COLUMNS = ("parent_id", "count", "surface_um2", "density_per_um2", "disc_diameter_nm_median",
                   "volume_nm3_median", "parent_volume_um3")


def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "–"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _rows(table: Table, columns: tuple[str, ...], limit: int) -> dict[str, Any]:
    cols = [c for c in columns if c in table.columns]
    rows = [[_fmt(table[c][i]) for c in cols] for i in range(min(len(table), limit))]
    return {"header": cols, "rows": rows}


def render_html(analysis: ObjectAnalysis, plots: Mapping[str, Path], *, title: str, subtitle: str = "",
                files: list[str] | None = None) -> str:
    import jinja2

    from .. import __version__

    s = summary(analysis)
    o = analysis.objects
    parents = analysis.parents
    headline = f"{len(o)} object(s)"
    if analysis.counts.get("components", len(o)) != len(o):
        headline += f" kept of {analysis.counts['components']} connected components"
    if s["diameter_nm_median"] is not None:
        headline += f"; median {s['diameter_column'].replace('_nm', '').replace('_', ' ')} {s['diameter_nm_median']:.0f} nm"
    if parents is not None and len(parents):
        dens = parents["density_per_um2"]
        fin = dens[np.isfinite(dens)]
        headline += f"; {len(parents)} parent(s)"
        if len(fin):
            headline += f", {float(np.median(fin)):.1f} per µm² of surface (median, {analysis.surface_method})"
    facts = [("objects", str(len(o))), ("touching the volume's border", str(s["touching_border"]))]
    for k in ("removed_small", "removed_outside"):
        if k in analysis.counts:
            facts.append((k.replace("_", " "), str(analysis.counts[k])))
    if s["volume_nm3_median"] is not None:
        facts.append(("median volume", f"{s['volume_nm3_median']:,.0f} nm³"))
    if analysis.surface_method:
        how = {"mesh": "marching-cubes mesh of the parent smoothed by one voxel",
               "faces": "voxel-face count with anisotropic face areas"}[analysis.surface_method]
        facts.append(("parent surface", how))
    uris = [(name, "data:image/png;base64," + base64.b64encode(Path(p).read_bytes()).decode()) for name, p in
            plots.items()]
    limit = MAX_HTML_ROWS
    note = (f"All {len(o)} objects." if len(o) <= limit else
            f"The first {limit} of {len(o)} objects; every object is in objects.csv and objects.parquet.")
    agree = None
    if analysis.extra.get("agreement"):
        expected = analysis.extra.get("expected")
        def num(r, x):
            return "–" if x is None else _fmt(int(x) if r.quantity == "count" else x)

        agree = {"source": getattr(expected, "source", "known values"), "rows": [
            (r.quantity.replace("_", " "), num(r, r.expected), num(r, r.measured),
             f"±{r.tolerance:.0%}" if r.relative else f"±{r.tolerance:g}", "agrees" if r.agrees else "DISAGREES",
             r.how) for r in analysis.extra["agreement"]]}
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_PAGE).render(
        title=title, subtitle=subtitle, headline=headline, findings=analysis.findings, agreement=agree,
        rule=analysis.settings.get("plausibility"), facts=facts, plots=uris,
        parents=_rows(parents, _PARENT_COLUMNS, limit) if parents is not None else None,
        objects={**_rows(o, _OBJECT_COLUMNS, limit), "note": note},
        settings=[(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in analysis.settings.items()],
        files=files or [], tool=f"curation {__version__}",
    )


def write_report(analysis: ObjectAnalysis, folder: Path | str, *, image: Any = None, parents: Any = None,
                 title: str = "Object analysis", subtitle: str = "") -> ReportFiles:
    """Tables, plots and the HTML page for ``analysis`` in ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = write_tables(analysis, folder)
    plots = {"sizes.png": plot_sizes(analysis, folder / "sizes.png")}
    if analysis.parents is not None:
        plots["parents.png"] = plot_parents(analysis, folder / "parents.png")
    plots["montage.png"] = plot_montage(analysis, folder / "montage.png", image=image, parents=parents)
    page = render_html(analysis, plots, title=title, subtitle=subtitle, files=sorted(tables))
    out = folder / "report.html"
    out.write_text(page, encoding="utf-8")
    return ReportFiles(folder, tables, plots, out)


__all__ = ["ReportFiles", "plot_montage", "plot_parents", "plot_sizes", "render_html", "summary", "write_report",
           "write_tables"]
