// unmask explore: the browser side. Plain JavaScript, no libraries; the data paths are described in
// unmask/explore/data.py. Every string that comes from a file (class names, paths, folder names) is put
// into the page with textContent or as an option's text, never as HTML.
"use strict";

(function () {
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  const GREY = [200, 200, 200];
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function colourOf(value) {
    if (value < 0) return "#999999";
    if (value < PALETTE.length) return PALETTE[value];
    const hue = (value * 137.508) % 360; // golden angle: distinct hues beyond the palette
    return `hsl(${hue.toFixed(1)}, 62%, 48%)`;
  }
  const rgbCache = new Map();
  function rgbOf(value) {
    if (!rgbCache.has(value)) {
      const probe = document.createElement("canvas").getContext("2d");
      probe.fillStyle = colourOf(value);
      const hex = probe.fillStyle; // normalised to #rrggbb
      rgbCache.set(value, [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
    }
    return rgbCache.get(value);
  }
  function el(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "number") return String(value);
    return Number.isInteger(value) ? String(value) : value.toFixed(digits === undefined ? 3 : digits);
  }

  // ------------------------------------------------------------------ state (mirrored in the URL)
  const state = { a: 0, b: null, color: "cluster", view: "overlay", sel: null, page: 0, pageSize: 60, detail: null, views: {} };
  const app = { meta: null, stores: [], analyses: [], plots: {}, selected: new Int32Array(0), selectedMask: null, tool: "pan" };

  function encodeSelection(sel) {
    if (!sel) return "";
    if (sel.kind === "all") return "all";
    if (sel.kind === "class") return `class:${sel.value}`;
    if (sel.kind === "cluster") return `cluster.${sel.plot}:${sel.value}`;
    if (sel.kind === "lasso" || sel.kind === "rect") return `${sel.kind}.${sel.plot}:${sel.coords.map((v) => +v.toPrecision(5)).join(",")}`;
    return "";
  }
  function decodeSelection(text) {
    if (!text) return null;
    if (text === "all") return { kind: "all" };
    const match = /^(class|cluster|lasso|rect)(?:\.(a|b))?:(.*)$/.exec(text);
    if (!match) return null;
    const [, kind, plot, rest] = match;
    if (kind === "class") return Number.isFinite(+rest) ? { kind, value: +rest } : null;
    if (kind === "cluster") return Number.isFinite(+rest) ? { kind, plot: plot || "a", value: +rest } : null;
    const coords = rest.split(",").map(Number);
    if (coords.some((v) => !Number.isFinite(v))) return null;
    if (kind === "rect" && coords.length !== 4) return null;
    if (kind === "lasso" && (coords.length < 6 || coords.length % 2)) return null;
    return { kind, plot: plot || "a", coords };
  }
  function writeUrl() {
    const parts = new URLSearchParams();
    parts.set("a", state.a);
    if (state.b !== null) parts.set("b", state.b);
    parts.set("color", state.color);
    parts.set("view", state.view);
    if (state.sel) parts.set("sel", encodeSelection(state.sel));
    if (state.page) parts.set("page", state.page);
    if (state.pageSize !== 60) parts.set("n", state.pageSize);
    if (state.detail !== null) parts.set("detail", state.detail);
    for (const [name, view] of Object.entries(state.views)) if (view) parts.set(`v${name}`, view.map((v) => +v.toPrecision(5)).join(","));
    const hash = "#" + parts.toString();
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }
  function readUrl() {
    const parts = new URLSearchParams(location.hash.slice(1));
    const count = app.analyses.length;
    const int = (name, fallback) => (parts.has(name) && Number.isInteger(+parts.get(name)) ? +parts.get(name) : fallback);
    state.a = Math.min(Math.max(int("a", 0), 0), Math.max(count - 1, 0));
    const b = int("b", null);
    state.b = b !== null && b >= 0 && b < count && b !== state.a ? b : null;
    state.color = ["cluster", "label", "prediction"].includes(parts.get("color")) ? parts.get("color") : count ? "cluster" : "label";
    state.view = ["input", "heatmap", "overlay"].includes(parts.get("view")) ? parts.get("view") : "overlay";
    state.sel = decodeSelection(parts.get("sel"));
    state.page = Math.max(int("page", 0), 0);
    state.pageSize = [30, 60, 120, 240].includes(int("n", 60)) ? int("n", 60) : 60;
    state.detail = int("detail", null);
    state.views = {};
    for (const name of ["a", "b"]) {
      const view = (parts.get(`v${name}`) || "").split(",").map(Number);
      state.views[name] = view.length === 3 && view.every(Number.isFinite) && view[2] > 0 ? view : null;
    }
  }

  // ------------------------------------------------------------------ data
  async function fetchOk(path) {
    const response = await fetch(path);
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response;
  }
  async function loadStore(k) {
    const store = app.stores[k];
    if (!store.loading) {
      store.loading = (async () => {
        const buffer = await (await fetchOk(`data/s${k}/samples.bin`)).arrayBuffer();
        const n = buffer.byteLength / 12;
        store.indices = new Int32Array(buffer, 0, n);
        store.labels = new Int32Array(buffer, 4 * n, n);
        store.predictions = new Int32Array(buffer, 8 * n, n);
        let largest = 0;
        for (let i = 0; i < n; i++) if (store.indices[i] > largest) largest = store.indices[i];
        store.position = new Int32Array(largest + 1).fill(-1);
        for (let i = 0; i < n; i++) store.position[store.indices[i]] = i;
        store.rows = new Map();
      })();
    }
    return store.loading;
  }
  async function loadAnalysis(k) {
    const analysis = app.analyses[k];
    if (!analysis.loading) {
      analysis.loading = (async () => {
        await loadStore(analysis.store);
        const buffer = await (await fetchOk(`data/a${k}/points.bin`)).arrayBuffer();
        const n = buffer.byteLength / 16;
        analysis.x = new Float32Array(buffer, 0, n);
        analysis.y = new Float32Array(buffer, 4 * n, n);
        analysis.cluster = new Int32Array(buffer, 8 * n, n);
        analysis.index = new Int32Array(buffer, 12 * n, n);
        const store = app.stores[analysis.store];
        analysis.label = new Int32Array(n);
        analysis.prediction = new Int32Array(n);
        analysis.clusterOf = new Map();
        for (let i = 0; i < n; i++) {
          const position = store.position[analysis.index[i]];
          analysis.label[i] = store.labels[position];
          analysis.prediction[i] = store.predictions[position];
          analysis.clusterOf.set(analysis.index[i], analysis.cluster[i]);
        }
      })();
    }
    return analysis.loading;
  }
  function rowsOf(storeId, index) {
    const store = app.stores[storeId];
    const block = Math.floor(index / app.meta.row_block);
    if (!store.rows.has(block)) {
      store.rows.set(block, fetchOk(`data/s${storeId}/rows/${block}.json`).then((r) => r.json()).then((rows) => {
        const byIndex = new Map();
        for (const row of rows) byIndex.set(row.index, row);
        return byIndex;
      }));
    }
    return store.rows.get(block).then((rows) => rows.get(index) || null);
  }
  const imageUrl = (storeId, index, kind) => `img/s${storeId}/${index}/${kind}.png`;

  // ------------------------------------------------------------------ the scatter
  class Scatter {
    constructor(name, figure) {
      this.name = name;
      this.figure = figure;
      this.canvas = $("canvas", figure);
      this.context = this.canvas.getContext("2d");
      this.analysis = null;
      this.view = null; // [centre x, centre y, pixels per unit]
      this.drag = null;
      this.path = null; // the lasso or rectangle being drawn, in canvas pixels
      this.lastDrawMs = 0;
      this.bindEvents();
    }
    setAnalysis(analysis) {
      this.analysis = analysis;
      this.fit();
    }
    resize() {
      const ratio = window.devicePixelRatio || 1;
      const width = Math.max(50, Math.round(this.canvas.clientWidth * ratio));
      const height = Math.max(50, Math.round(this.canvas.clientHeight * ratio));
      if (this.canvas.width !== width || this.canvas.height !== height) {
        this.canvas.width = width;
        this.canvas.height = height;
        this.image = null;
      }
    }
    fit() {
      this.resize();
      const a = this.analysis;
      if (!a || !a.x.length) { this.view = [0, 0, 1]; return; }
      let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      for (let i = 0; i < a.x.length; i++) {
        const x = a.x[i], y = a.y[i];
        if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
      const span = Math.max(x1 - x0, y1 - y0, 1e-9);
      const scale = (0.92 * Math.min(this.canvas.width, this.canvas.height)) / span;
      this.view = [(x0 + x1) / 2, (y0 + y1) / 2, scale];
    }
    toData(px, py) {
      const [cx, cy, s] = this.view;
      return [cx + (px - this.canvas.width / 2) / s, cy - (py - this.canvas.height / 2) / s];
    }
    eventPixel(event) {
      const box = this.canvas.getBoundingClientRect();
      const ratio = this.canvas.width / box.width;
      return [(event.clientX - box.left) * ratio, (event.clientY - box.top) * ratio];
    }
    colourValues() {
      const a = this.analysis;
      return state.color === "label" ? a.label : state.color === "prediction" ? a.prediction : a.cluster;
    }
    draw() {
      const started = performance.now();
      this.resize();
      const { width, height } = this.canvas;
      const a = this.analysis;
      if (!this.image) {
        this.image = this.context.createImageData(width, height);
        this.pixels = new Uint32Array(this.image.data.buffer);
      }
      const pixels = this.pixels;
      pixels.fill(0xffffffff);
      if (a) {
        const n = a.x.length;
        const ratio = window.devicePixelRatio || 1;
        const radius = Math.max(1, Math.round((n < 2000 ? 3 : n < 20000 ? 2 : 1) * ratio * Math.min(2, Math.max(1, Math.sqrt(this.view[2] / this.fitScale())))));
        const spans = Array.from({ length: 2 * radius + 1 }, (_, k) => Math.floor(Math.sqrt(Math.max(0, (radius + 0.5) ** 2 - (k - radius) ** 2))));
        const values = this.colourValues();
        const mask = app.selectedMask;
        const anySelected = app.selected.length > 0;
        const palette = new Map();
        const packed = (rgb) => (255 << 24) | (rgb[2] << 16) | (rgb[1] << 8) | rgb[0];
        const dim = packed(GREY);
        const screenX = new Float32Array(n), screenY = new Float32Array(n);
        const [cx, cy, s] = this.view;
        const hx = width / 2, hy = height / 2;
        // two passes: the others (grey when something is selected) first, the selected on top
        for (let pass = 0; pass < 2; pass++) {
          for (let i = 0; i < n; i++) {
            const px = hx + (a.x[i] - cx) * s, py = hy - (a.y[i] - cy) * s;
            screenX[i] = px; screenY[i] = py;
            const chosen = anySelected && mask[a.index[i]] === 1;
            if ((pass === 0) === chosen && anySelected) continue;
            if (pass === 1 && !anySelected) continue;
            let colour;
            if (anySelected && !chosen) colour = dim;
            else {
              const v = values[i];
              colour = palette.get(v);
              if (colour === undefined) { colour = packed(rgbOf(v)); palette.set(v, colour); }
            }
            const rx = Math.round(px), ry = Math.round(py);
            if (rx - radius >= width || ry - radius >= height || rx + radius < 0 || ry + radius < 0) continue;
            for (let dy = -radius; dy <= radius; dy++) { // a disc: one span of pixels per row
              const y = ry + dy;
              if (y < 0 || y >= height) continue;
              const half = spans[dy + radius];
              pixels.fill(colour, y * width + Math.max(0, rx - half), y * width + Math.min(width - 1, rx + half) + 1);
            }
          }
        }
        this.screenX = screenX;
        this.screenY = screenY;
        this.buildPickIndex();
      }
      this.context.putImageData(this.image, 0, 0);
      this.drawPath();
      this.lastDrawMs = performance.now() - started;
    }
    fitScale() {
      if (!this.fitted) { const keep = this.view; this.fit(); this.fitted = this.view[2]; this.view = keep; }
      return this.fitted;
    }
    drawPath() {
      const path = this.path;
      if (!path || path.points.length < 2) return;
      const g = this.context;
      g.save();
      g.strokeStyle = "#000";
      g.lineWidth = window.devicePixelRatio || 1;
      g.setLineDash([5, 4]);
      g.fillStyle = "rgba(43, 87, 151, 0.12)";
      g.beginPath();
      if (path.kind === "rect") {
        const [[x0, y0], [x1, y1]] = [path.points[0], path.points[path.points.length - 1]];
        g.rect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
      } else {
        g.moveTo(path.points[0][0], path.points[0][1]);
        for (const [x, y] of path.points.slice(1)) g.lineTo(x, y);
        g.closePath();
      }
      g.fill();
      g.stroke();
      g.restore();
    }
    buildPickIndex() {
      // points bucketed into 16-pixel cells (a counting sort), for the hover lookup
      const cell = 16, { width, height } = this.canvas;
      const columns = Math.ceil(width / cell) + 1, rows = Math.ceil(height / cell) + 1;
      const n = this.screenX.length;
      const cellOf = new Int32Array(n);
      const counts = new Int32Array(columns * rows + 1);
      for (let i = 0; i < n; i++) {
        const cx = Math.floor(this.screenX[i] / cell), cy = Math.floor(this.screenY[i] / cell);
        const c = cx < 0 || cy < 0 || cx >= columns || cy >= rows ? -1 : cy * columns + cx;
        cellOf[i] = c;
        if (c >= 0) counts[c + 1]++;
      }
      for (let c = 1; c < counts.length; c++) counts[c] += counts[c - 1];
      const order = new Int32Array(counts[counts.length - 1]);
      const fill = counts.slice(0, -1);
      for (let i = 0; i < n; i++) if (cellOf[i] >= 0) order[fill[cellOf[i]]++] = i;
      this.pick = { cell, columns, rows, starts: counts, order };
    }
    nearest(px, py, within) {
      const p = this.pick;
      if (!p) return -1;
      let best = -1, bestDistance = within * within;
      const cx = Math.floor(px / p.cell), cy = Math.floor(py / p.cell);
      for (let y = cy - 1; y <= cy + 1; y++) {
        for (let x = cx - 1; x <= cx + 1; x++) {
          if (x < 0 || y < 0 || x >= p.columns || y >= p.rows) continue;
          const c = y * p.columns + x;
          for (let k = p.starts[c]; k < p.starts[c + 1]; k++) {
            const i = p.order[k];
            const d = (this.screenX[i] - px) ** 2 + (this.screenY[i] - py) ** 2;
            if (d <= bestDistance) { bestDistance = d; best = i; }
          }
        }
      }
      return best;
    }
    bindEvents() {
      const canvas = this.canvas;
      canvas.addEventListener("pointerdown", (event) => {
        if (!this.analysis) return;
        canvas.setPointerCapture(event.pointerId);
        const at = this.eventPixel(event);
        if (app.tool === "pan") this.drag = { from: at, view: this.view.slice() };
        else this.path = { kind: app.tool, points: [at] };
        hideTooltip();
      });
      canvas.addEventListener("pointermove", (event) => {
        const at = this.eventPixel(event);
        if (this.drag) {
          const [x0, y0] = this.drag.from, [cx, cy, s] = this.drag.view;
          this.view = [cx - (at[0] - x0) / s, cy + (at[1] - y0) / s, s];
          this.draw();
        } else if (this.path) {
          if (this.path.kind === "rect") this.path.points[1] = at;
          else this.path.points.push(at);
          this.draw();
        } else this.hover(event, at);
      });
      const finish = (event) => {
        if (this.drag) {
          this.drag = null;
          state.views[this.name] = this.view.slice();
          writeUrl();
        }
        if (this.path) {
          const path = this.path;
          this.path = null;
          if (path.points.length >= (path.kind === "rect" ? 2 : 3)) {
            const coords = [];
            if (path.kind === "rect") {
              const [a0, a1] = this.toData(...path.points[0]);
              const [b0, b1] = this.toData(...path.points[path.points.length - 1]);
              coords.push(Math.min(a0, b0), Math.min(a1, b1), Math.max(a0, b0), Math.max(a1, b1));
            } else {
              for (const point of simplify(path.points, 2)) coords.push(...this.toData(...point));
            }
            if (coords.length >= 4) setSelection({ kind: path.kind === "rect" ? "rect" : "lasso", plot: this.name, coords });
            else this.draw();
          } else this.draw();
        }
      };
      canvas.addEventListener("pointerup", finish);
      canvas.addEventListener("pointercancel", finish);
      canvas.addEventListener("pointerleave", () => { if (!this.drag && !this.path) hideTooltip(); });
      canvas.addEventListener("wheel", (event) => {
        if (!this.analysis) return;
        event.preventDefault();
        const at = this.eventPixel(event);
        const before = this.toData(...at);
        const factor = Math.exp(-event.deltaY * 0.0015);
        this.view[2] = Math.min(Math.max(this.view[2] * factor, 1e-6), 1e9);
        const after = this.toData(...at);
        this.view[0] += before[0] - after[0];
        this.view[1] += before[1] - after[1];
        this.draw();
        state.views[this.name] = this.view.slice();
        scheduleUrl();
      }, { passive: false });
    }
    hover(event, at) {
      const i = this.nearest(at[0], at[1], 8 * (window.devicePixelRatio || 1));
      if (i < 0) { hideTooltip(); return; }
      const a = this.analysis;
      const store = app.stores[a.store];
      const index = a.index[i];
      const text = [`#${index}`, `cluster ${a.cluster[i]}`, `label ${className(store, a.label[i])}`, `prediction ${className(store, a.prediction[i])}`];
      showTooltip(event.clientX, event.clientY, imageUrl(a.store, index, store.has_images ? "overlay" : "heatmap"), text);
    }
  }

  function simplify(points, distance) {
    // drop lasso points closer than `distance` pixels to the last kept one (the polygon stays the same shape)
    const out = [points[0]];
    for (const p of points.slice(1)) {
      const q = out[out.length - 1];
      if ((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= distance * distance) out.push(p);
    }
    return out;
  }
  function inside(x, y, polygon) {
    // even-odd rule: a ray to the right crosses the polygon's edges an odd number of times
    let hit = false;
    for (let i = 0, j = polygon.length - 2; i < polygon.length; j = i, i += 2) {
      const xi = polygon[i], yi = polygon[i + 1], xj = polygon[j], yj = polygon[j + 1];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
    }
    return hit;
  }
  function className(store, value) {
    const classes = store.classes || [];
    return value >= 0 && value < classes.length ? classes[value] : String(value);
  }

  // ------------------------------------------------------------------ tooltip
  const tooltip = $("#tooltip");
  function showTooltip(x, y, src, lines) {
    const image = $("img", tooltip);
    if (image.getAttribute("src") !== src) image.setAttribute("src", src);
    const text = $(".text", tooltip);
    text.replaceChildren(...lines.map((line) => el("div", {}, line)));
    tooltip.hidden = false;
    const left = Math.min(x + 14, window.innerWidth - 190);
    tooltip.style.left = `${left}px`;
    tooltip.style.top = `${Math.min(y + 14, window.innerHeight - 170)}px`;
  }
  function hideTooltip() { tooltip.hidden = true; }

  // ------------------------------------------------------------------ selection
  function universe() {
    // the analysis selections are made in: A, or null when no SpRAy result was given (then the first store's samples)
    return app.analyses.length ? app.analyses[state.a] : null;
  }
  function setSelection(sel) {
    const started = performance.now();
    state.sel = sel;
    state.page = 0;
    applySelection();
    writeUrl();
    explore.selectMs = performance.now() - started;
  }
  function computeSelection() {
    const sel = state.sel;
    if (!sel) return new Int32Array(0);
    const picked = [];
    const analysis = sel.plot === "b" && state.b !== null ? app.analyses[state.b] : universe();
    if (!analysis || sel.kind === "class") { // a class: all its samples in the store, analysed or not
      const store = app.stores[analysis ? analysis.store : 0];
      for (let i = 0; i < store.indices.length; i++) {
        if (sel.kind === "all" || (sel.kind === "class" && store.labels[i] === sel.value)) picked.push(store.indices[i]);
      }
      return Int32Array.from(picked).sort();
    }
    const n = analysis.x.length;
    let test;
    if (sel.kind === "all") test = () => true;
    else if (sel.kind === "cluster") test = (i) => analysis.cluster[i] === sel.value;
    else if (sel.kind === "rect") {
      const [x0, y0, x1, y1] = sel.coords;
      test = (i) => analysis.x[i] >= x0 && analysis.x[i] <= x1 && analysis.y[i] >= y0 && analysis.y[i] <= y1;
    } else if (sel.kind === "lasso") {
      let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      for (let k = 0; k < sel.coords.length; k += 2) {
        x0 = Math.min(x0, sel.coords[k]); x1 = Math.max(x1, sel.coords[k]);
        y0 = Math.min(y0, sel.coords[k + 1]); y1 = Math.max(y1, sel.coords[k + 1]);
      }
      test = (i) => {
        const x = analysis.x[i], y = analysis.y[i];
        return x >= x0 && x <= x1 && y >= y0 && y <= y1 && inside(x, y, sel.coords);
      };
    } else test = () => false;
    for (let i = 0; i < n; i++) if (test(i)) picked.push(analysis.index[i]);
    return Int32Array.from(picked).sort();
  }
  function applySelection() {
    app.selected = computeSelection();
    let largest = 0;
    for (const store of app.stores) if (store.position) largest = Math.max(largest, store.position.length);
    app.selectedMask = new Uint8Array(largest + 1);
    for (const index of app.selected) app.selectedMask[index] = 1;
    const pages = Math.max(1, Math.ceil(app.selected.length / state.pageSize));
    state.page = Math.min(state.page, pages - 1);
    for (const plot of Object.values(app.plots)) if (plot.analysis) plot.draw();
    renderButtons();
    renderGrid();
  }
  function describeSelection() {
    const sel = state.sel;
    if (!sel) return "nothing selected";
    const count = app.selected.length.toLocaleString("en");
    if (sel.kind === "all") return `all ${count} samples`;
    if (sel.kind === "class") return `${count} samples of class ${className(app.stores[universe() ? universe().store : 0], sel.value)}`;
    if (sel.kind === "cluster") return `${count} samples of cluster ${sel.value}${state.b !== null ? ` (${sel.plot === "b" ? "second" : "first"} analysis)` : ""}`;
    return `${count} samples in the ${sel.kind === "rect" ? "rectangle" : "lasso"}`;
  }

  // ------------------------------------------------------------------ export
  function exportRows() {
    const a = universe();
    const b = state.b !== null ? app.analyses[state.b] : null;
    const store = app.stores[a ? a.store : 0];
    return Array.from(app.selected, (index) => {
      const position = store.position[index];
      const row = { index, label: store.labels[position], prediction: store.predictions[position] };
      if (a) row.cluster = a.clusterOf.has(index) ? a.clusterOf.get(index) : null;
      if (b) row.cluster_b = b.clusterOf.has(index) ? b.clusterOf.get(index) : null;
      return row;
    });
  }
  function exportText(format) {
    const rows = exportRows();
    if (format === "csv") {
      const columns = rows.length ? Object.keys(rows[0]) : ["index"];
      const cell = (v) => (v === null || v === undefined ? "" : String(v));
      return [columns.join(","), ...rows.map((row) => columns.map((c) => cell(row[c])).join(","))].join("\n") + "\n";
    }
    const a = universe();
    return JSON.stringify({
      store: app.stores[a ? a.store : 0].path,
      analysis: a ? a.path : null,
      selection: encodeSelection(state.sel),
      description: describeSelection(),
      indices: Array.from(app.selected),
      samples: rows,
    }, null, 1);
  }
  function download(format) {
    const blob = new Blob([exportText(format)], { type: format === "csv" ? "text/csv" : "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `selection.${format}` });
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }

  // ------------------------------------------------------------------ panels
  function renderButtons() {
    for (const [name, id] of [["a", "#clusters-a"], ["b", "#clusters-b"]]) {
      const panel = $(id);
      const k = name === "a" ? (app.analyses.length ? state.a : null) : state.b;
      panel.hidden = k === null;
      if (k === null) continue;
      const analysis = app.analyses[k];
      const box = $(".cluster-buttons", panel);
      box.replaceChildren(...analysis.clusters.map((c) => {
        const active = state.sel && state.sel.kind === "cluster" && (state.sel.plot || "a") === name && state.sel.value === c.label;
        const button = el("button", { type: "button", "data-cluster": c.label, "data-plot": name, class: active ? "active" : "" });
        const swatch = el("span", { class: "swatch" });
        swatch.style.background = colourOf(c.label);
        button.append(swatch, document.createTextNode(c.label < 0 ? "noise" : `cluster ${c.label}`), el("span", { class: "size" }, `${c.size.toLocaleString("en")}`));
        button.addEventListener("click", () => setSelection({ kind: "cluster", plot: name, value: c.label }));
        return button;
      }));
      const scores = analysis.scores;
      if (name === "a" && scores && analysis.truth) {
        box.append(el("span", { class: "note" }, `against '${analysis.truth}': ARI ${fmt(scores.ari)}${scores.best_cluster !== undefined ? `, best cluster ${scores.best_cluster} (recall ${fmt(scores.recall, 2)}, precision ${fmt(scores.precision, 2)})` : ""}`));
      }
    }
    $("#class-select").value = state.sel && state.sel.kind === "class" ? String(state.sel.value) : "";
    $("#selection-info").textContent = describeSelection();
  }
  function renderLegend() {
    const legend = $("#legend");
    const a = universe();
    if (!a) { legend.replaceChildren(el("span", { class: "note" }, "no SpRAy result given")); return; }
    const values = new Map();
    const source = state.color === "label" ? a.label : state.color === "prediction" ? a.prediction : a.cluster;
    for (const v of source) values.set(v, (values.get(v) || 0) + 1);
    const store = app.stores[a.store];
    legend.replaceChildren(...Array.from(values.entries()).sort((p, q) => p[0] - q[0]).slice(0, 60).map(([v, count]) => {
      const item = el("span", { class: "item" });
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = colourOf(v);
      const name = state.color === "cluster" ? (v < 0 ? "noise" : `cluster ${v}`) : className(store, v);
      item.append(swatch, document.createTextNode(`${name} (${count.toLocaleString("en")})`));
      return item;
    }));
  }
  function renderSpectrum() {
    // the eigenvalues of the first analysis (blue, the ones below the gap red) and, when comparing, of the
    // second (orange); a dashed line marks the eigengap that picked each one's number of clusters
    const canvas = $("#eigenvalues");
    const note = $("#eigen-note");
    const a = universe();
    const b = state.b !== null ? app.analyses[state.b] : null;
    const series = [[a, "#2b5797", "#d62728"], [b, "#ff7f0e", "#8c2d04"]].filter(([analysis]) => analysis && analysis.eigenvalues.length);
    const panel = $("#spectrum-panel");
    panel.hidden = !series.length;
    if (panel.hidden) return;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * ratio) || 480;
    canvas.height = Math.round(canvas.clientHeight * ratio) || 180;
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const width = canvas.width / ratio, height = canvas.height / ratio;
    g.clearRect(0, 0, width, height);
    const all = series.map(([analysis]) => analysis.eigenvalues.map((v) => (v === null ? NaN : v)));
    const count = Math.max(...all.map((values) => values.length));
    const top = Math.max(...all.flat().filter(Number.isFinite), 1e-9);
    const left = 44, right = 10, upper = 10, lower = 26;
    const X = (i) => left + ((i + 0.5) / count) * (width - left - right);
    const Y = (v) => upper + (1 - v / top) * (height - upper - lower);
    g.strokeStyle = "#bbb"; g.lineWidth = 1;
    g.beginPath(); g.moveTo(left, upper); g.lineTo(left, height - lower); g.lineTo(width - right, height - lower); g.stroke();
    g.fillStyle = "#555"; g.font = "11px system-ui, sans-serif"; g.textAlign = "right";
    g.fillText(fmt(top, 3), left - 4, upper + 8); g.fillText("0", left - 4, height - lower);
    const notes = [];
    series.forEach(([analysis, line, chosen], s) => {
      const values = all[s];
      const n = analysis.n_clusters;
      if (n && n < values.length) { // the gap between eigenvalue n and n + 1
        const at = (X(n - 1) + X(n)) / 2 + 2 * s;
        g.strokeStyle = chosen; g.setLineDash([4, 3]); g.lineWidth = 1;
        g.beginPath(); g.moveTo(at, upper); g.lineTo(at, height - lower); g.stroke();
        g.setLineDash([]);
        g.fillStyle = chosen; g.textAlign = "left";
        g.fillText(`eigengap → ${n} clusters`, Math.min(at + 6, width - 130), upper + 10 + 14 * s);
      }
      g.strokeStyle = line; g.lineWidth = 1.5; g.beginPath();
      values.forEach((v, i) => (i ? g.lineTo(X(i), Y(v)) : g.moveTo(X(i), Y(v))));
      g.stroke();
      values.forEach((v, i) => {
        g.fillStyle = i < n ? chosen : line;
        g.beginPath(); g.arc(X(i), Y(v), 3, 0, 2 * Math.PI); g.fill();
      });
      notes.push(`${series.length > 1 ? (s ? "second (orange): " : "first (blue): ") : ""}${n} clusters` +
        (analysis.suggested_n_clusters !== n ? ` (the eigengap suggests ${analysis.suggested_n_clusters})` : " (chosen by the eigengap)") +
        (analysis.eigengap !== null && analysis.eigengap !== undefined ? `, gap ${fmt(analysis.eigengap, 4)}` : ""));
    });
    if (count <= 20) {
      g.fillStyle = "#555"; g.textAlign = "center";
      for (let i = 0; i < count; i++) g.fillText(String(i + 1), X(i), height - lower + 14);
    }
    note.textContent = `The ${count} smallest eigenvalues of the normalised Laplacian; ${notes.join("; ")}.`;
  }

  // ------------------------------------------------------------------ grid and detail
  let gridToken = 0;
  function pictureNode(storeId, index, kind, alt) {
    const store = app.stores[storeId];
    const wanted = kind !== "heatmap" && !store.has_images ? "heatmap" : kind;
    if (store.position && (index >= store.position.length || store.position[index] < 0)) return el("div", { class: "missing" }, "not in this store");
    const image = el("img", { src: imageUrl(storeId, index, wanted), alt, loading: "lazy", "data-kind": wanted, "data-index": index, "data-store": storeId });
    image.addEventListener("error", () => image.replaceWith(el("div", { class: "missing" }, "no picture")), { once: true });
    return image;
  }
  function comparedStore() {
    const a = universe();
    if (state.b === null || !a) return null;
    const b = app.analyses[state.b];
    return b.store !== a.store ? b.store : null;
  }
  function renderGrid() {
    const grid = $("#grid");
    const token = ++gridToken;
    const total = app.selected.length;
    const pages = Math.max(1, Math.ceil(total / state.pageSize));
    $("#page-info").textContent = total ? `page ${state.page + 1} of ${pages}` : "–";
    $("#prev-page").disabled = state.page <= 0;
    $("#next-page").disabled = state.page >= pages - 1;
    for (const button of $$("[data-view]")) button.classList.toggle("active", button.dataset.view === state.view);
    const a = universe();
    const storeId = a ? a.store : 0;
    const other = comparedStore();
    const indices = app.selected.slice(state.page * state.pageSize, (state.page + 1) * state.pageSize);
    const compareNote = $("#compare-note");
    compareNote.hidden = other === null;
    if (other !== null) {
      const label = (k) => app.stores[k].method || app.stores[k].name;
      compareNote.textContent = `left: ${label(storeId)} · right: ${label(other)} (the same samples, from two stores)`;
    }
    const tiles = Array.from(indices, (index) => {
      const tile = el("div", { class: "tile", "data-index": index, tabindex: "0" });
      const pics = el("div", { class: other !== null ? "pics two" : "pics" });
      pics.append(pictureNode(storeId, index, state.view, `sample ${index}`));
      if (other !== null) pics.append(pictureNode(other, index, state.view, `sample ${index}, second analysis`));
      const caption = el("div", { class: "caption" }, `#${index}`);
      tile.append(pics, caption);
      tile.addEventListener("click", () => openDetail(index));
      tile.addEventListener("keydown", (event) => { if (event.key === "Enter") openDetail(index); });
      rowsOf(storeId, index).then((row) => {
        if (token !== gridToken || !row) return;
        const wrong = row.label >= 0 && row.label !== row.prediction;
        const b = state.b !== null ? app.analyses[state.b] : null;
        const clusterB = b && b.clusterOf && b.clusterOf.has(index) ? ` / ${b.clusterOf.get(index)}` : "";
        const classes = `${row.label_name ?? row.label} → ${row.prediction_name ?? row.prediction}`;
        const lines = [
          el("div", {}, `#${row.index}${a ? (a.clusterOf.has(index) ? ` · cluster ${a.clusterOf.get(index)}${clusterB}` : " · not analysed") : ""}`),
          el("div", { class: wrong ? "wrong" : "", title: classes }, classes),
          el("div", { title: app.stores[storeId].share }, `share ${fmt(row.share, 2)} · p ${fmt(row.probability, 2)}`),
        ];
        caption.replaceChildren(...lines);
      });
      return tile;
    });
    grid.replaceChildren(...tiles);
    if (!total) grid.append(el("p", { class: "note" }, app.analyses.length ? "Select samples: click a cluster, choose a class, or draw a lasso or rectangle in the embedding." : "Choose a class, or All."));
  }
  async function openDetail(index) {
    state.detail = index;
    writeUrl();
    const dialog = $("#detail");
    const a = universe();
    const storeIds = [a ? a.store : 0];
    const other = comparedStore();
    if (other !== null) storeIds.push(other);
    $(".title", dialog).textContent = `Sample #${index}`;
    const pictures = $(".pictures", dialog);
    pictures.replaceChildren();
    for (const storeId of storeIds) {
      const store = app.stores[storeId];
      for (const kind of ["input", "heatmap", "overlay"]) {
        if (kind !== "heatmap" && !store.has_images) continue;
        const figure = el("figure");
        figure.append(pictureNode(storeId, index, kind, `${kind} of sample ${index}`), el("figcaption", {}, `${kind}${storeIds.length > 1 ? ` · ${store.method || store.name}` : ""}`));
        pictures.append(figure);
      }
    }
    const body = $(".fields tbody", dialog);
    body.replaceChildren();
    const add = (name, value) => { const tr = el("tr"); tr.append(el("th", {}, name), el("td", {}, value)); body.append(tr); };
    if (!dialog.open) dialog.showModal();
    for (const storeId of storeIds) {
      const store = app.stores[storeId];
      const row = await rowsOf(storeId, index);
      if (!row) continue;
      const suffix = storeIds.length > 1 ? ` (${store.method || store.name})` : "";
      if (storeId === storeIds[0]) {
        add("path", row.path);
        add("label", `${row.label_name ?? "–"} (${row.label})`);
      }
      add(`prediction${suffix}`, `${row.prediction_name ?? "–"} (${row.prediction}), p = ${fmt(row.probability)}`);
      add(`explained class${suffix}`, `${className(store, row.target)}, logit ${fmt(row.logit)}`);
      add(`relevance share${suffix}`, `${fmt(row.share)} (${store.share})`);
      for (const [name, value] of Object.entries(row.extra || {})) add(`${name}${suffix}`, fmt(value));
    }
    if (a) add("cluster", a.clusterOf.has(index) ? String(a.clusterOf.get(index)) : "not analysed");
    if (state.b !== null && app.analyses[state.b].clusterOf) {
      const b = app.analyses[state.b];
      add("cluster (second analysis)", b.clusterOf.has(index) ? String(b.clusterOf.get(index)) : "not analysed");
    }
  }

  // ------------------------------------------------------------------ layout and wiring
  let urlTimer = null;
  function scheduleUrl() { clearTimeout(urlTimer); urlTimer = setTimeout(writeUrl, 250); }
  async function showAnalyses() {
    const a = universe();
    const b = state.b !== null ? app.analyses[state.b] : null;
    $("#plot-b").hidden = !b;
    $("#plot-a").hidden = !a;
    if (a) await loadAnalysis(state.a);
    if (b) await loadAnalysis(state.b);
    for (const [name, analysis] of [["a", a], ["b", b]]) {
      const plot = app.plots[name];
      plot.analysis = null;
      if (!analysis) continue;
      plot.fitted = null;
      plot.setAnalysis(analysis);
      if (state.views[name]) plot.view = state.views[name].slice();
      const store = app.stores[analysis.store];
      $("figcaption", plot.figure).textContent = `${name === "a" ? "" : "second: "}${analysis.name} · ${analysis.selection || "all samples"} · ${store.method || ""} · ${analysis.embedding || "layout"} (${analysis.n_samples.toLocaleString("en")} samples)`;
    }
    $("#plot-note").textContent = a ? (a.has_embedding ? "" : "This result has no 2-D embedding (spray --embedding none): clusters are laid out side by side.") : "No SpRAy result given: the grid shows the store's samples by class (unmask spray STORE --out DIR makes one).";
    $("#analysis-a").value = String(state.a);
    $("#analysis-b").value = state.b === null ? "" : String(state.b);
    $("#color-by").value = state.color;
    renderLegend();
    renderSpectrum();
    applySelection();
  }
  function fillSelectors() {
    const describe = (analysis) => `${analysis.name}: ${analysis.selection || "all samples"} · ${analysis.method || "?"} (${analysis.n_samples})`;
    const selectA = $("#analysis-a"), selectB = $("#analysis-b");
    selectA.replaceChildren(...app.analyses.map((analysis, k) => el("option", { value: k }, describe(analysis))));
    if (!app.analyses.length) selectA.append(el("option", { value: "" }, "no SpRAy result"));
    selectB.replaceChildren(el("option", { value: "" }, "none"), ...app.analyses.map((analysis, k) => el("option", { value: k }, describe(analysis))));
    selectB.disabled = app.analyses.length < 2;
    const classes = app.stores[0].classes || [];
    const classSelect = $("#class-select");
    const counts = new Map();
    for (const v of app.stores[0].labels) counts.set(v, (counts.get(v) || 0) + 1);
    const values = classes.length ? classes.map((_, i) => i) : Array.from(counts.keys()).filter((v) => v >= 0).sort((p, q) => p - q);
    classSelect.replaceChildren(el("option", { value: "" }, "any class"), ...values.map((v) => el("option", { value: v }, `${className(app.stores[0], v)} (${(counts.get(v) || 0).toLocaleString("en")})`)));
  }
  function wire() {
    $("#analysis-a").addEventListener("change", (event) => {
      if (event.target.value === "") return;
      state.a = +event.target.value;
      if (state.b === state.a) state.b = null;
      state.sel = null; state.views = {};
      showAnalyses().then(writeUrl);
    });
    $("#analysis-b").addEventListener("change", (event) => {
      const value = event.target.value === "" ? null : +event.target.value;
      state.b = value === state.a ? null : value;
      state.views.b = null;
      if (state.sel && state.sel.plot === "b") state.sel = null;
      showAnalyses().then(writeUrl);
    });
    $("#color-by").addEventListener("change", (event) => {
      state.color = event.target.value;
      renderLegend();
      for (const plot of Object.values(app.plots)) if (plot.analysis) plot.draw();
      writeUrl();
    });
    $("#class-select").addEventListener("change", (event) => setSelection(event.target.value === "" ? null : { kind: "class", value: +event.target.value }));
    for (const button of $$("[data-tool]")) {
      button.addEventListener("click", () => {
        app.tool = button.dataset.tool;
        for (const other of $$("[data-tool]")) other.classList.toggle("active", other === button);
        for (const plot of Object.values(app.plots)) plot.canvas.classList.toggle("select", app.tool !== "pan");
      });
    }
    $("#reset-view").addEventListener("click", () => {
      for (const [name, plot] of Object.entries(app.plots)) if (plot.analysis) { plot.fit(); plot.draw(); state.views[name] = null; }
      writeUrl();
    });
    $("#select-all").addEventListener("click", () => setSelection({ kind: "all" }));
    $("#clear-selection").addEventListener("click", () => setSelection(null));
    for (const button of $$("[data-view]")) button.addEventListener("click", () => { state.view = button.dataset.view; renderGrid(); writeUrl(); });
    $("#prev-page").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); renderGrid(); writeUrl(); });
    $("#next-page").addEventListener("click", () => { state.page += 1; renderGrid(); writeUrl(); });
    $("#page-size").addEventListener("change", (event) => { state.pageSize = +event.target.value; state.page = 0; renderGrid(); writeUrl(); });
    $("#export-csv").addEventListener("click", () => download("csv"));
    $("#export-json").addEventListener("click", () => download("json"));
    $("#detail").addEventListener("close", () => { state.detail = null; writeUrl(); });
    $("#detail").addEventListener("keydown", (event) => { // arrow keys: the previous / next selected sample
      if ((event.key !== "ArrowLeft" && event.key !== "ArrowRight") || state.detail === null) return;
      const at = app.selected.indexOf(state.detail);
      const next = at < 0 ? -1 : at + (event.key === "ArrowRight" ? 1 : -1);
      if (next >= 0 && next < app.selected.length) { event.preventDefault(); openDetail(app.selected[next]); }
    });
    window.addEventListener("resize", () => { for (const plot of Object.values(app.plots)) if (plot.analysis) plot.draw(); renderSpectrum(); });
    window.addEventListener("hashchange", () => { // a link pasted or edited by hand (replaceState fires none)
      readUrl();
      $("#page-size").value = String(state.pageSize);
      showAnalyses().then(() => { if (state.detail !== null) openDetail(state.detail); });
    });
  }

  async function start() {
    const status = $("#status");
    try {
      app.meta = await (await fetchOk("data/meta.json")).json();
      app.stores = app.meta.stores;
      app.analyses = app.meta.analyses;
      app.plots = { a: new Scatter("a", $("#plot-a")), b: new Scatter("b", $("#plot-b")) };
      await loadStore(0);
      readUrl();
      $("#page-size").value = String(state.pageSize);
      fillSelectors();
      wire();
      await showAnalyses();
      writeUrl();
      if (state.detail !== null) openDetail(state.detail);
      const store = app.stores[0];
      status.textContent = `${store.count.toLocaleString("en")} samples · ${app.analyses.length} SpRAy result(s) · unmask ${app.meta.unmask_version}`;
      explore.ready = true;
      explore.readyAt = performance.now(); // from the start of the navigation
    } catch (error) {
      status.textContent = `cannot load the data: ${error.message}`;
      explore.error = String(error);
    }
  }

  // what scripts and tests may use
  const explore = {
    ready: false,
    readyAt: null,
    selectMs: null,
    state,
    selection: () => Array.from(app.selected),
    exportText,
    drawMs: () => Object.fromEntries(Object.entries(app.plots).map(([name, plot]) => [name, plot.lastDrawMs])),
    clusterValues: (plot) => (app.plots[plot].analysis ? Array.from(app.plots[plot].analysis.cluster) : null),
    screen: (plot) => { const p = app.plots[plot]; return [Array.from(p.screenX || []), Array.from(p.screenY || [])]; },
    points: (plot) => {
      const analysis = app.plots[plot].analysis;
      return analysis ? { x: Array.from(analysis.x), y: Array.from(analysis.y), index: Array.from(analysis.index) } : null;
    },
  };
  window.unmaskExplore = explore;
  start();
})();
