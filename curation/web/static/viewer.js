// The slice viewer of `curate serve`: tiles from the server, drawn on a canvas.
// Coordinates: pos = [z, y, x] in level-0 voxels (voxel i spans [i, i+1)); the view shows
// the plane through pos, centred on it, at `scale` CSS pixels per nanometre, so voxels
// appear at their true aspect. No dependencies, no build step.
(() => {
  "use strict";
  const cfg = JSON.parse(document.getElementById("viewer-config").textContent);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const PLANES = { xy: [0, 1, 2], xz: [1, 0, 2], yz: [2, 0, 1] };
  const AXES = "zyx";
  const NAME = encodeURIComponent(cfg.name);
  const shape0 = cfg.shape;
  const vox0 = cfg.levels[0].scale_nm;
  const T = cfg.tile_size;
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);

  let versions = cfg.versions;
  const byAddress = () => new Map(versions.map((v) => [v.address, v]));

  const state = {
    plane: PLANES[params.get("plane")] ? params.get("plane") : "xy",
    pos: shape0.map((n, i) => {
      const v = parseFloat(params.get(AXES[i]));
      return Number.isFinite(v) ? Math.min(Math.max(v, 0), n - 1) + 0.5 : n / 2;
    }),
    scale: null,
    lo: cfg.window[0],
    hi: cfg.window[1],
    overlays: new Set(),
    opacity: 0.6,
    compare: ["none", "side", "diff"].includes(params.get("compare")) ? params.get("compare") : "none",
    a: params.get("a") || "",
    b: params.get("b") || "",
    tool: "pan",
    strokes: [],
    complete: new Set(),
    base: "",
  };

  function latestPerLayer() {
    const last = new Map();
    for (const v of versions) last.set(v.layer, v.address);
    return [...last.values()];
  }
  if (params.get("layers")) {
    for (const a of params.get("layers").split(",")) if (byAddress().has(a)) state.overlays.add(a);
  } else {
    for (const a of latestPerLayer()) state.overlays.add(a);
  }
  if (!state.a && versions.length > 1) state.a = versions[versions.length - 2].address;
  if (!state.b && versions.length) state.b = versions[versions.length - 1].address;

  // --- colours --------------------------------------------------------------------------
  function hsv(h, s, v) {
    const i = Math.floor(h * 6), f = h * 6 - i, p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
    return [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6].map((x) => Math.round(x * 255));
  }
  function colourOf(version, value) {
    const c = version && version.colors[String(value)];
    if (c) return c;
    return hsv((value * 0.618033988749895) % 1, 0.65 + 0.3 * ((value * 0.38196601125) % 1), 0.95);
  }

  // --- views ----------------------------------------------------------------------------
  const views = ["view-a", "view-b"].map((id) => {
    const el = $(id);
    const canvas = el.querySelector("canvas");
    return { el, canvas, ctx: canvas.getContext("2d"), caption: el.querySelector(".caption") };
  });

  const tiles = new Map();
  let pending = 0;
  function tile(url) {
    let t = tiles.get(url);
    if (t) {
      tiles.delete(url);
      tiles.set(url, t);
      return t;
    }
    const img = new Image();
    t = { img, ok: false, failed: false };
    pending++;
    document.body.dataset.tilesPending = String(pending);
    img.onload = () => { t.ok = true; done(); };
    img.onerror = () => { t.failed = true; done(); };
    img.src = url;
    tiles.set(url, t);
    while (tiles.size > 800) tiles.delete(tiles.keys().next().value);
    return t;
  }
  function done() {
    pending--;
    document.body.dataset.tilesPending = String(pending);
    schedule();
  }

  const axes = () => PLANES[state.plane];
  const sliceIndex = () => Math.min(Math.floor(state.pos[axes()[0]]), shape0[axes()[0]] - 1);

  function fit() {
    const [, r, c] = axes();
    const box = views[0].canvas.getBoundingClientRect();
    const w = box.width || 800, h = box.height || 600;
    state.scale = 0.95 * Math.min(w / (shape0[c] * vox0[c]), h / (shape0[r] * vox0[r]));
  }

  function chooseLevel() {
    const [, r, c] = axes();
    const nmPerPx = 1 / (state.scale * (window.devicePixelRatio || 1));
    let best = 0;
    for (const lv of cfg.levels) if (Math.min(lv.scale_nm[r], lv.scale_nm[c]) <= nmPerPx * 1.01) best = lv.index;
    return best;
  }

  function imageUrl(level, row, col) {
    const q = `lo=${state.lo}&hi=${state.hi}&size=${T}`;
    return `/tile/${NAME}/image/${state.plane}/${level}/${sliceIndex()}/${row}/${col}?${q}`;
  }
  const labelUrl = (addr) => (level, row, col) =>
    `/tile/${NAME}/label/${encodeURIComponent(addr)}/${state.plane}/${level}/${sliceIndex()}/${row}/${col}?size=${T}`;
  const diffUrl = (a, b) => (level, row, col) =>
    `/tile/${NAME}/diff/${encodeURIComponent(a)}/${encodeURIComponent(b)}/${state.plane}/${level}/${sliceIndex()}/${row}/${col}?size=${T}`;

  function drawTiles(view, level, urlOf, alpha) {
    const { ctx, canvas } = view;
    const [, r, c] = axes();
    const lv = cfg.levels[level];
    const s = state.scale * (window.devicePixelRatio || 1);
    const W = canvas.width, H = canvas.height;
    const cr = state.pos[r] * vox0[r], cc = state.pos[c] * vox0[c];
    const tr = T * lv.scale_nm[r], tc = T * lv.scale_nm[c];
    const r0 = Math.max(0, Math.floor((cr - H / 2 / s) / tr)), r1 = Math.min(Math.ceil(lv.shape[r] / T) - 1, Math.floor((cr + H / 2 / s) / tr));
    const c0 = Math.max(0, Math.floor((cc - W / 2 / s) / tc)), c1 = Math.min(Math.ceil(lv.shape[c] / T) - 1, Math.floor((cc + W / 2 / s) / tc));
    ctx.globalAlpha = alpha;
    for (let row = r0; row <= r1; row++) {
      for (let col = c0; col <= c1; col++) {
        const t = tile(urlOf(level, row, col));
        if (!t.ok) continue;
        const x = (col * tc - cc) * s + W / 2, y = (row * tr - cr) * s + H / 2;
        ctx.drawImage(t.img, x, y, t.img.naturalWidth * lv.scale_nm[c] * s, t.img.naturalHeight * lv.scale_nm[r] * s);
      }
    }
    ctx.globalAlpha = 1;
  }

  function drawStrokes(view) {
    const { ctx, canvas } = view;
    const [, r, c] = axes();
    const s = state.scale * (window.devicePixelRatio || 1);
    const idx = sliceIndex();
    const base = byAddress().get(state.base);
    ctx.save();
    ctx.setTransform(s * vox0[c], 0, 0, s * vox0[r], canvas.width / 2 - state.pos[c] * vox0[c] * s, canvas.height / 2 - state.pos[r] * vox0[r] * s);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    for (const st of state.strokes) {
      if (st.plane !== state.plane || st.index !== idx) continue;
      const rgb = st.value === 0 ? [255, 255, 255] : colourOf(base, st.value);
      ctx.strokeStyle = `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${st.value === 0 ? 0.55 : 0.85})`;
      ctx.fillStyle = ctx.strokeStyle;
      ctx.lineWidth = 2 * st.radius;
      ctx.beginPath();
      const p = st.points;
      ctx.moveTo(p[0][1] + 0.5, p[0][0] + 0.5);
      for (const q of p.slice(1)) ctx.lineTo(q[1] + 0.5, q[0] + 0.5);
      if (p.length === 1) ctx.lineTo(p[0][1] + 0.5001, p[0][0] + 0.5);
      ctx.stroke();
    }
    ctx.restore();
    if (state.complete.has(`${state.plane}:${idx}`)) {
      ctx.strokeStyle = "#2e7d32";
      ctx.lineWidth = 4;
      ctx.strokeRect(2, 2, canvas.width - 4, canvas.height - 4);
    }
  }

  function drawView(view, overlays, caption) {
    const { canvas, ctx } = view;
    const dpr = window.devicePixelRatio || 1;
    const box = canvas.getBoundingClientRect();
    const W = Math.max(1, Math.round(box.width * dpr)), H = Math.max(1, Math.round(box.height * dpr));
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, W, H);
    const level = chooseLevel();
    const coarsest = cfg.levels.length - 1;
    if (coarsest !== level) drawTiles(view, coarsest, imageUrl, 1);
    drawTiles(view, level, imageUrl, 1);
    for (const urlOf of overlays) drawTiles(view, level, urlOf, state.opacity);
    drawStrokes(view);
    view.caption.textContent = caption;
    return level;
  }

  let queued = false;
  function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; redraw(); });
  }

  function redraw() {
    const side = state.compare === "side";
    views[1].el.hidden = !side;
    if (state.scale === null) fit();
    let level;
    if (state.compare === "side" && state.a && state.b) {
      level = drawView(views[0], [labelUrl(state.a)], `A: ${state.a}`);
      drawView(views[1], [labelUrl(state.b)], `B: ${state.b}`);
    } else if (state.compare === "diff" && state.a && state.b) {
      level = drawView(views[0], [diffUrl(state.a, state.b)], `difference ${state.a} → ${state.b}`);
    } else {
      level = drawView(views[0], [...state.overlays].filter((a) => byAddress().has(a)).map(labelUrl), "");
    }
    const [n] = axes();
    $("slice-out").textContent = `${AXES[n]} = ${sliceIndex()} / ${shape0[n] - 1}`;
    $("status").textContent = `${state.plane.toUpperCase()} · level ${level} · ${(1 / state.scale).toFixed(1)} nm per pixel`;
    document.body.dataset.level = String(level);
    syncUrl();
  }

  let urlTimer = 0;
  function syncUrl() {
    clearTimeout(urlTimer);
    urlTimer = setTimeout(() => {
      const q = new URLSearchParams();
      q.set("plane", state.plane);
      state.pos.forEach((v, i) => q.set(AXES[i], String(Math.floor(v))));
      if (state.overlays.size) q.set("layers", [...state.overlays].join(","));
      if (state.compare !== "none") { q.set("compare", state.compare); q.set("a", state.a); q.set("b", state.b); }
      history.replaceState(null, "", `${location.pathname}?${q}`);
    }, 200);
  }

  // --- controls ---------------------------------------------------------------------------
  function segmented(id, attr, get, set) {
    const box = $(id);
    if (!box) return;
    const mark = () => box.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset[attr] === get()));
    box.addEventListener("click", (e) => {
      const b = e.target.closest("button");
      if (!b) return;
      set(b.dataset[attr]);
      mark();
      schedule();
    });
    mark();
  }

  function setSliceRange() {
    const [n] = axes();
    const slider = $("slice");
    slider.max = String(shape0[n] - 1);
    slider.value = String(sliceIndex());
  }
  segmented("planes", "plane", () => state.plane, (p) => { state.plane = p; state.scale = null; setSliceRange(); });
  $("slice").addEventListener("input", (e) => {
    state.pos[axes()[0]] = parseInt(e.target.value, 10) + 0.5;
    schedule();
  });
  setSliceRange();

  function stepSlice(d) {
    const [n] = axes();
    state.pos[n] = Math.min(Math.max(Math.floor(state.pos[n]) + d, 0), shape0[n] - 1) + 0.5;
    $("slice").value = String(sliceIndex());
    schedule();
  }
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select")) return;
    if (e.key === "ArrowUp" || e.key === "PageUp") { stepSlice(e.key === "PageUp" ? 10 : 1); e.preventDefault(); }
    if (e.key === "ArrowDown" || e.key === "PageDown") { stepSlice(e.key === "PageDown" ? -10 : -1); e.preventDefault(); }
  });

  const zoomBy = (f) => { state.scale *= f; schedule(); };
  $("zoom-in").addEventListener("click", () => zoomBy(1.5));
  $("zoom-out").addEventListener("click", () => zoomBy(1 / 1.5));
  $("fit").addEventListener("click", () => { state.scale = null; schedule(); });

  // contrast
  const dmax = cfg.dtype === "uint8" ? 255 : cfg.dtype === "uint16" ? 65535 : Math.max(cfg.window[1] * 2, 1);
  const dmin = cfg.dtype.startsWith("int") || cfg.dtype.startsWith("float") ? Math.min(cfg.window[0] * 2, 0) : 0;
  for (const id of ["lo", "hi"]) {
    const el = $(id);
    el.min = String(dmin); el.max = String(dmax); el.step = cfg.dtype.startsWith("float") ? "any" : "1";
  }
  let contrastTimer = 0;
  function showContrast() {
    $("lo").value = String(state.lo); $("hi").value = String(state.hi);
    $("lo-out").textContent = String(Math.round(state.lo)); $("hi-out").textContent = String(Math.round(state.hi));
  }
  for (const id of ["lo", "hi"]) {
    $(id).addEventListener("input", () => {
      let lo = parseFloat($("lo").value), hi = parseFloat($("hi").value);
      if (hi <= lo) { if (id === "lo") lo = hi - 1; else hi = lo + 1; }
      state.lo = lo; state.hi = hi;
      $("lo-out").textContent = String(Math.round(lo)); $("hi-out").textContent = String(Math.round(hi));
      clearTimeout(contrastTimer);
      contrastTimer = setTimeout(schedule, 120);
    });
  }
  $("auto").addEventListener("click", () => { [state.lo, state.hi] = cfg.window; showContrast(); schedule(); });
  showContrast();

  // layers
  function swatch(v) {
    const value = v.label_values.find((x) => x !== 0 && x !== v.unlabeled);
    const c = value === undefined ? [128, 128, 128] : colourOf(v, value);
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  function buildLayers() {
    const box = $("layers");
    box.textContent = "";
    if (!versions.length) { box.textContent = "No label versions yet."; }
    for (const v of versions) {
      const label = document.createElement("label");
      label.className = "check layer";
      const cb = document.createElement("input");
      cb.type = "checkbox";
      cb.checked = state.overlays.has(v.address);
      cb.dataset.address = v.address;
      cb.addEventListener("change", () => {
        if (cb.checked) state.overlays.add(v.address); else state.overlays.delete(v.address);
        schedule();
      });
      const sw = document.createElement("span");
      sw.className = "sw";
      sw.style.background = swatch(v);
      const text = document.createElement("span");
      text.textContent = `${v.address} · ${v.kind}`;
      text.title = `${v.creator}, ${v.created}${v.note ? "\n" + v.note : ""}`;
      label.append(cb, sw, text);
      box.append(label);
    }
    for (const [id, key] of [["cmp-a", "a"], ["cmp-b", "b"]]) {
      const sel = $(id);
      sel.textContent = "";
      for (const v of versions) sel.append(new Option(v.address, v.address, false, v.address === state[key]));
      sel.onchange = () => { state[key] = sel.value; schedule(); };
    }
    const base = $("base");
    if (base) {
      base.textContent = "";
      base.append(new Option("nothing (a new layer)", ""));
      for (const v of versions) base.append(new Option(`${v.address} (${v.kind})`, v.address));
      if (!state.base || !byAddress().has(state.base)) {
        const gts = versions.filter((v) => v.kind === "ground-truth");
        state.base = (gts.length ? gts[gts.length - 1] : versions[versions.length - 1] || { address: "" }).address;
      }
      base.value = state.base;
      base.onchange = () => { state.base = base.value; schedule(); };
    }
  }
  buildLayers();
  $("opacity").addEventListener("input", (e) => { state.opacity = parseFloat(e.target.value); schedule(); });
  segmented("compare", "mode", () => state.compare, (m) => {
    if ((m === "side") !== (state.compare === "side")) state.scale = null;
    state.compare = m;
  });

  async function loadLineage() {
    const r = await fetch(`/a/${NAME}/lineage.svg`, { cache: "no-store" });
    $("lineage").innerHTML = r.ok ? await r.text() : "";
  }
  loadLineage();

  // --- pointer: pan, zoom, paint ----------------------------------------------------------
  function toVoxel(view, ev) {
    const [, r, c] = axes();
    const box = view.canvas.getBoundingClientRect();
    const x = ev.clientX - box.left - box.width / 2, y = ev.clientY - box.top - box.height / 2;
    return [state.pos[r] + y / state.scale / vox0[r], state.pos[c] + x / state.scale / vox0[c]];
  }

  let drag = null;
  for (const view of views) {
    const cv = view.canvas;
    cv.addEventListener("pointerdown", (ev) => {
      cv.setPointerCapture(ev.pointerId);
      const painting = (state.tool === "brush" || state.tool === "eraser") && ev.button === 0 && cfg.allow_edit;
      if (painting) {
        const [row, col] = toVoxel(view, ev);
        const value = state.tool === "eraser" ? 0 : Math.max(1, parseInt($("value").value, 10) || 1);
        const st = { plane: state.plane, index: sliceIndex(), value, radius: parseFloat($("radius").value), points: [[row - 0.5, col - 0.5]] };
        state.strokes.push(st);
        drag = { kind: "paint", st, view };
      } else {
        drag = { kind: "pan", x: ev.clientX, y: ev.clientY };
      }
      schedule();
    });
    cv.addEventListener("pointermove", (ev) => {
      const [row, col] = toVoxel(view, ev);
      const [n, r, c] = axes();
      const p = [0, 0, 0];
      p[n] = sliceIndex(); p[r] = Math.floor(row); p[c] = Math.floor(col);
      $("status").textContent = `z ${p[0]}  y ${p[1]}  x ${p[2]} · ${state.plane.toUpperCase()} · level ${document.body.dataset.level}`;
      if (!drag) return;
      if (drag.kind === "pan") {
        state.pos[r] -= (ev.clientY - drag.y) / state.scale / vox0[r];
        state.pos[c] -= (ev.clientX - drag.x) / state.scale / vox0[c];
        drag.x = ev.clientX; drag.y = ev.clientY;
      } else {
        const pts = drag.st.points, last = pts[pts.length - 1];
        if (Math.hypot(row - 0.5 - last[0], col - 0.5 - last[1]) >= 0.5) pts.push([row - 0.5, col - 0.5]);
      }
      schedule();
    });
    const end = () => { if (drag && drag.kind === "paint") updatePending(); drag = null; };
    cv.addEventListener("pointerup", end);
    cv.addEventListener("pointercancel", end);
    cv.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const [, r, c] = axes();
      const before = toVoxel(view, ev);
      state.scale *= Math.exp(-ev.deltaY * 0.0015);
      const after = toVoxel(view, ev);
      state.pos[r] += before[0] - after[0];
      state.pos[c] += before[1] - after[1];
      schedule();
    }, { passive: false });
  }
  new ResizeObserver(schedule).observe($("stage"));

  // --- painting -----------------------------------------------------------------------------
  function updatePending() {
    const el = $("pending");
    if (!el) return;
    const planes = new Set(state.strokes.map((s) => `${s.plane} ${s.index}`));
    el.textContent = state.strokes.length || state.complete.size
      ? `${state.strokes.length} stroke(s) on ${planes.size} plane(s), ${state.complete.size} complete plane(s), not saved`
      : "";
    const cb = $("complete");
    if (cb) cb.checked = state.complete.has(`${state.plane}:${sliceIndex()}`);
  }

  if (cfg.allow_edit) {
    segmented("tools", "tool", () => state.tool, (t) => { state.tool = t; $("stage").dataset.tool = t; });
    $("radius").addEventListener("input", (e) => { $("radius-out").textContent = e.target.value; });
    $("radius-out").textContent = $("radius").value;
    $("complete").addEventListener("change", (e) => {
      const key = `${state.plane}:${sliceIndex()}`;
      if (e.target.checked) state.complete.add(key); else state.complete.delete(key);
      updatePending();
      schedule();
    });
    $("slice").addEventListener("input", updatePending);
    $("undo").addEventListener("click", () => { state.strokes.pop(); updatePending(); schedule(); });
    $("clear").addEventListener("click", () => { state.strokes = []; state.complete.clear(); updatePending(); schedule(); });
    $("save").addEventListener("click", save);
  }

  async function save() {
    const status = $("save-status");
    if (!state.strokes.length && !state.complete.size) { status.textContent = "Nothing painted yet."; return; }
    const base = byAddress().get(state.base);
    const edit = {
      strokes: state.strokes,
      complete: [...state.complete].map((k) => { const [plane, index] = k.split(":"); return { plane, index: parseInt(index, 10) }; }),
      note: $("note").value,
    };
    if (base) edit.base = base.address;
    else edit.layer = window.prompt("Name of the new layer", "ground-truth") || "";
    if ($("creator").value.trim()) edit.creator = $("creator").value.trim();
    status.className = "";
    status.textContent = "Saving…";
    $("save").disabled = true;
    try {
      const r = await fetch(`/api/a/${NAME}/paint`, {
        method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(edit),
      });
      const out = await r.json();
      if (r.status === 201) {
        status.className = "ok";
        status.textContent = `Saved ${out.address} (tag ${out.tag}).`;
        state.strokes = []; state.complete.clear(); $("note").value = "";
        const fresh = await (await fetch(`/api/a/${NAME}`, { cache: "no-store" })).json();
        versions = fresh.versions;
        const made = byAddress().get(out.address);
        for (const v of versions) if (made && v.layer === made.layer && v.address !== made.address) state.overlays.delete(v.address);
        state.overlays.add(out.address);
        state.base = out.address;
        if (out.parents && out.parents.length) { state.a = out.parents[0]; state.b = out.address; }
        buildLayers();
        updatePending();
        loadLineage();
      } else {
        status.className = r.status === 409 ? "busy" : "error";
        status.textContent = (r.status === 409 ? "Busy: " : "Not saved: ") + (out.message || r.statusText) + (out.hint ? ` (${out.hint})` : "");
      }
    } catch (err) {
      status.className = "error";
      status.textContent = `Not saved: ${err}`;
    } finally {
      $("save").disabled = false;
      schedule();
    }
  }

  window.curationViewer = { state, redraw: schedule, versions: () => versions, tilesPending: () => pending };
  schedule();
})();
