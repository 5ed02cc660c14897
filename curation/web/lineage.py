"""The lineage of label versions drawn as an SVG graph.

One row per layer, one column per generation (a version stands one column right of its
furthest parent), an arrow from each parent to its child (across layers too: a
consensus made from annotators, a ground truth painted over a prediction). Nodes are
coloured by kind and link to the viewer with that version shown; hovering shows
creator, date and note. Plain SVG, no script, every text escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape, quoteattr

from .catalog import Version

KIND_COLORS = {"ground-truth": "#2e7d32", "prediction": "#1565c0", "consensus": "#6a1b9a"}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD, LABEL_W = 132, 40, 48, 22, 12, 110


def lineage_svg(versions: Sequence[Version], link: Callable[[Version], str] | None = None) -> str:
    """An ``<svg>`` element of the lineage of ``versions`` (empty text when there are none)."""
    if not versions:
        return ""
    by_addr = {v.address: v for v in versions}
    depth: dict[str, int] = {}

    def gen(v: Version, seen: frozenset = frozenset()) -> int:
        if v.address in depth:
            return depth[v.address]
        ps = [by_addr[p] for p in v.parents if p in by_addr and p not in seen]
        d = 1 + max((gen(p, seen | {v.address}) for p in ps), default=-1)
        depth[v.address] = d
        return d

    for v in versions:
        gen(v)
    layers = sorted({v.layer for v in versions})
    rows: dict[tuple[str, int], int] = {}
    lane_rows: dict[str, int] = {}
    for v in sorted(versions, key=lambda v: (v.layer, v.version)):
        key = (v.layer, depth[v.address])
        rows[key] = rows.get(key, -1) + 1
        lane_rows[v.layer] = max(lane_rows.get(v.layer, 0), rows[key] + 1)
    lane_y, y = {}, PAD
    for layer in layers:
        lane_y[layer] = y
        y += lane_rows[layer] * (NODE_H + GAP_Y)
    height = y - GAP_Y + PAD
    width = LABEL_W + (max(depth.values()) + 1) * (NODE_W + GAP_X) - GAP_X + 2 * PAD
    slot: dict[tuple[str, int], int] = {}
    pos: dict[str, tuple[float, float]] = {}
    for v in sorted(versions, key=lambda v: (v.layer, v.version)):
        key = (v.layer, depth[v.address])
        k = slot[key] = slot.get(key, -1) + 1
        pos[v.address] = (PAD + LABEL_W + depth[v.address] * (NODE_W + GAP_X), lane_y[v.layer] + k * (NODE_H + GAP_Y))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="label version lineage">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for layer in layers:
        out.append(f'<text class="lane" x="{PAD}" y="{lane_y[layer] + NODE_H / 2 + 5}" font-size="14" '
                   f'font-weight="bold" fill="#333">{escape(layer)}</text>')
    for v in versions:
        x1, y1 = pos[v.address]
        for p in v.parents:
            if p not in pos:
                continue
            x0, y0 = pos[p]
            sx, sy, ex, ey = x0 + NODE_W, y0 + NODE_H / 2, x1, y1 + NODE_H / 2
            mx = (sx + ex) / 2
            out.append(f'<path class="edge" d="M{sx},{sy} C{mx},{sy} {mx},{ey} {ex - 2},{ey}" fill="none" '
                       f'stroke="#555" stroke-width="1.5" marker-end="url(#arrow)"/>')
    for v in versions:
        x, y = pos[v.address]
        colour = KIND_COLORS.get(v.kind, "#555")
        tip = f"{v.address} ({v.kind})\n{v.creator}, {v.created}" + (f"\n{v.note}" if v.note else "")
        node = (f'<g class="node" data-address={quoteattr(v.address)}><title>{escape(tip)}</title>'
                f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="#fff" stroke="{colour}" '
                f'stroke-width="2"/>'
                f'<text x="{x + NODE_W / 2}" y="{y + 17}" text-anchor="middle" font-size="13" font-weight="bold" '
                f'fill="{colour}">{escape(v.address)}</text>'
                f'<text x="{x + NODE_W / 2}" y="{y + 32}" text-anchor="middle" font-size="10" fill="#555">'
                f'{escape(v.kind)} · {escape(v.created[:10])}</text></g>')
        if link is not None:
            node = f'<a href={quoteattr(link(v))}>{node}</a>'
        out.append(node)
    out.append("</svg>")
    return "\n".join(out)
