// Latent Lab: probe the latent space anywhere on a 2-D map, decoded in the browser (components v2, inline).
//
// latent_probe.py prepends latent_decoder.js's library part (compile, paint, floats, el, the shared
// window.__latentLab), so both elements decode with the very same code. Per panel (one model's map):
//   pointer -> map point -> latent code (the inverse of core/cartography.py, ported: raw, PCA plane,
//   barycentric over Delaunay triangles with the same walk as codes_from_spec) -> decode -> paint,
//   once per animation frame; nothing goes to the server while hovering.
//   A click pins the probe (state "pin"; the server keeps the list, ui/state.py puts it in the URL).
//   The grid toggle draws an n x n decoded manifold over the current window, each tile bordered by its
//   hole depth (core.holes.hole_depth_of: nearest training code / typical neighbour distance).
// A table (shape (F,)): the probe is latent_decoder.js's bar chart over the named features on the data's fixed
//   axis (data.chart: core.webdecoder.vector_chart), as the other pages draw a decoded row; there is no grid
//   (tiles of tiny bar charts cannot be read), the readout and the pins are the same as for images.
// Several panels (the hole comparison) share one relative view and one pointer: the pointer's relative
// position in one panel probes every panel at the same relative position of its own window.
// Large payloads (decoder specs, map data) are "blobs" sent once per tab: state "have" lists the keys
// this tab holds, and the server sends null for those afterwards.

const PROBE_LAB = (LAB.probe = LAB.probe || { blobs: new Map(), decoders: new Map(), paints: [], roots: [] });
const INSIDE_TOL = 100 * 2.220446049250313e-16; // core.cartography.INSIDE_TOL

function keepBlob(key, value) {
  PROBE_LAB.blobs.delete(key);
  PROBE_LAB.blobs.set(key, value);
  while (PROBE_LAB.blobs.size > 16) PROBE_LAB.blobs.delete(PROBE_LAB.blobs.keys().next().value);
}

// ----------------------------------------------------------------------------- map point -> code

function barycentric(pts, tri, px, py) {
  // core.cartography._barycentric: weights of (px, py) in triangle tri of pts ([[x, y], ...])
  const a = pts[tri[0]], b = pts[tri[1]], c = pts[tri[2]];
  const det = (b[1] - c[1]) * (a[0] - c[0]) + (c[0] - b[0]) * (a[1] - c[1]);
  if (det === 0) return [-Infinity, -Infinity, -Infinity];
  const w0 = ((b[1] - c[1]) * (px - c[0]) + (c[0] - b[0]) * (py - c[1])) / det;
  const w1 = ((c[1] - a[1]) * (px - c[0]) + (a[0] - c[0]) * (py - c[1])) / det;
  return [w0, w1, 1 - w0 - w1];
}

function locate(spec, px, py, start) {
  // core.cartography._locate: the visibility walk from `start`, then a scan as the guard
  const { points, simplices, neighbors } = spec;
  const argmin = (w) => (w[0] <= w[1] ? (w[0] <= w[2] ? 0 : 2) : w[1] <= w[2] ? 1 : 2);
  if (neighbors) {
    let s = start >= 0 && start < simplices.length ? start : 0;
    for (let step = 0; step <= simplices.length; step++) {
      const w = barycentric(points, simplices[s], px, py);
      const k = argmin(w);
      if (w[k] >= -INSIDE_TOL) return [s, w];
      s = neighbors[s][k];
      if (s < 0) return [-1, null];
    }
  }
  for (let s = 0; s < simplices.length; s++) {
    const w = barycentric(points, simplices[s], px, py);
    if (Math.min(w[0], w[1], w[2]) >= -INSIDE_TOL) return [s, w];
  }
  return [-1, null];
}

// -> {code: Float64Array | null (outside), triangle}; `hint`: the last triangle found (a short walk)
function codeAtPoint(spec, px, py, hint = 0) {
  if (spec.kind === "raw") return { code: Float64Array.from([px, py]), triangle: -1 };
  if (spec.kind === "pca") {
    const m = spec.mean, c0 = spec.components[0], c1 = spec.components[1];
    const z = new Float64Array(m.length);
    for (let j = 0; j < m.length; j++) z[j] = m[j] + px * c0[j] + py * c1[j];
    return { code: z, triangle: -1 };
  }
  if (spec.kind === "delaunay") {
    const [s, w] = locate(spec, px, py, hint);
    if (s < 0) return { code: null, triangle: hint };
    const tri = spec.simplices[s], codes = spec.codes, d = spec.dim;
    const z = new Float64Array(d);
    for (let k = 0; k < 3; k++) { const row = codes[tri[k]]; for (let j = 0; j < d; j++) z[j] += w[k] * row[j]; }
    return { code: z, triangle: s };
  }
  throw new Error(`unknown map inverse ${spec.kind}`);
}

// nearest training code (train: Float32Array (N * d)) -> {index, distance, depth}. The search runs in the
// WebAssembly kernel (decoder_kernels.wat "nearest", float32 sums, ~4x the JS loop) where it can (d % 4 == 0; the
// z = 2 maps are cheap anyway); the winner's distance is then computed in doubles like the JS loop's.
// options.wasm === false: the JS loop (tests).
function nearest(train, d, typical, z, options = {}) {
  let best = Infinity, bi = -1;
  const n = train.length / d;
  const W = options.wasm === false ? null : nearestKernel(train, d);
  if (W) {
    W.z.set(z);
    bi = W.run();
    if (bi >= 0) {
      best = 0;
      for (let j = 0; j < d; j++) { const t = train[bi * d + j] - z[j]; best += t * t; }
    }
  } else {
    for (let i = 0; i < n; i++) {
      let s = 0;
      const row = i * d;
      for (let j = 0; j < d; j++) { const t = train[row + j] - z[j]; s += t * t; if (s >= best) break; }
      if (s < best) { best = s; bi = i; }
    }
  }
  const distance = Math.sqrt(best);
  return { index: bi, distance, depth: distance / typical };
}

// the training codes copied once into a WebAssembly memory of their own -> {z: a view to write the query into,
// run() -> the nearest row}, or null (no SIMD, d % 4 !== 0)
const NEAREST_KERNELS = new WeakMap();
function nearestKernel(train, d) {
  if (NEAREST_KERNELS.has(train)) return NEAREST_KERNELS.get(train);
  let W = null;
  const module = d % 4 === 0 && globalThis.__latentLabWasm !== false ? wasmKernels() : null;
  if (module) {
    try {
      const A = wasmArena(module), n = train.length / d;
      const trainOff = A.alloc(train.length, train), zOff = A.alloc(d);
      A.finish();
      const kernel = A.kernels.nearest;
      W = { z: A.f32(zOff, d), run: () => kernel(trainOff, n, d, zOff) };
    } catch (e) {
      W = null;
    }
  }
  NEAREST_KERNELS.set(train, W);
  return W;
}

// ----------------------------------------------------------------------------- colours

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];

function depthColour(depth, hole) {
  // hole depth <= 1 (as close to the data as a typical code to its neighbour): green; up to `hole` (core.holes'
  // threshold: the 95th percentile of the codes' own neighbour distances): green to orange; beyond: red, a hole
  if (!Number.isFinite(depth)) return "rgba(128,128,128,0.9)";
  if (depth > hole) return "rgb(220,30,30)";
  const t = Math.min(1, Math.max(0, (depth - 1) / Math.max(hole - 1, 1e-9)));
  return `rgb(${Math.round(40 + 200 * t)},${Math.round(170 - 20 * t)},${Math.round(60 - 30 * t)})`;
}

// ----------------------------------------------------------------------------- one panel

function makePanel(host, spec, data) {
  const fig = el("figure", { class: "lp-panel", "data-panel": spec.title }, host);
  el("div", { class: "lp-title", text: spec.title }, fig);
  const row = el("div", { class: "lp-row" }, fig);
  const canvas = el("canvas", { class: "lp-map", "data-testid": "llProbeMap" }, row);
  const vector = data.shape.length === 1;
  const side = el("div", { class: vector ? "lp-side lp-side-chart" : "lp-side" }, row);
  const probe = el("canvas", { class: vector ? "lp-probe lp-chart" : "lp-probe", "data-kind": "probe" }, side);
  if (vector) {
    // a decoded row is a bar chart (paintBars sizes the canvas); hovering a bar names its feature and value
    probe.__llChart = chartOf(data.chart, data.shape[0], data.chart_width);
    probe.style.width = `${probe.__llChart.cssWidth}px`;
    probe.style.height = `${probe.__llChart.cssHeight}px`;
    probe.addEventListener("mousemove", (e) => {
      const b = barAt(probe, e.clientX);
      probe.title = b ? `${b.name}: ${b.value.toFixed(2)}` : "";
    });
  } else {
    probe.width = probe.height = data.probe_size;
    probe.style.width = probe.style.height = `${data.probe_size}px`;
  }
  const readout = el("div", { class: "lp-readout" }, side);
  return { fig, canvas, probe, readout, base: document.createElement("canvas"), grid: null, hint: 0, last: null };
}

function baseWindow(xy, n) {
  // the 1st to 99th percentile of the positions, padded by 10 %: a few far-out codes do not shrink the cloud
  // to a corner, and every model of the comparison gets the same kind of window
  const q = (vals, f) => vals[Math.min(vals.length - 1, Math.max(0, Math.round(f * (vals.length - 1))))];
  const xs = new Float64Array(n), ys = new Float64Array(n);
  for (let i = 0; i < n; i++) { xs[i] = xy[2 * i]; ys[i] = xy[2 * i + 1]; }
  xs.sort(); ys.sort();
  const x0 = q(xs, 0.01), x1 = q(xs, 0.99), y0 = q(ys, 0.01), y1 = q(ys, 0.99);
  const px = 0.1 * (x1 - x0 || 1), py = 0.1 * (y1 - y0 || 1);
  return [x0 - px, x1 + px, y0 - py, y1 + py];
}

function windowOf(panel, rel) {
  const [x0, x1, y0, y1] = panel.baseWin;
  return [x0 + rel[0] * (x1 - x0), x0 + rel[1] * (x1 - x0), y0 + rel[2] * (y1 - y0), y0 + rel[3] * (y1 - y0)];
}

// relative position (u right, v up, in [0, 1] of the view) -> map point of this panel
function mapPoint(panel, rel, u, v) {
  const [x0, x1, y0, y1] = windowOf(panel, rel);
  return [x0 + u * (x1 - x0), y0 + v * (y1 - y0)];
}

function toPixel(panel, rel, x, y) {
  const [x0, x1, y0, y1] = windowOf(panel, rel);
  const W = panel.canvas.width, H = panel.canvas.height;
  return [((x - x0) / (x1 - x0)) * W, (1 - (y - y0) / (y1 - y0)) * H];
}

// the grid of n x n tiles: centres as core.cartography.grid_points (top row first, left to right)
function gridPoints(win, n) {
  const [x0, x1, y0, y1] = win;
  const out = [];
  for (let r = 0; r < n; r++) {
    const y = y1 - ((r + 0.5) * (y1 - y0)) / n;
    for (let c = 0; c < n; c++) out.push([x0 + ((c + 0.5) * (x1 - x0)) / n, y]);
  }
  return out;
}

// the grid's tiles, decoded a slice at a time (the page stays responsive); grid.done once all are in
function startGrid(panel, rel, n) {
  const win = windowOf(panel, rel);
  const points = gridPoints(win, n);
  const layer = document.createElement("canvas");
  layer.width = panel.canvas.width; layer.height = panel.canvas.height;
  panel.grid = { n, win, points, codes: [], depth: [], inside: [], images: [], next: 0, hint: 0, done: false,
    pending: 0, drawn: 0, workers: !!workerPool(),
    // where the time goes (ms, on the page's thread; bench/probe_browser.py prints it): the map -> code inverse,
    // the hole depth (nearest training code), the decode, painting the tiles into the grid layer, redrawing the
    // map (base + frame), and the frames the grid took
    timing: { inverse: 0, depth: 0, decode: 0, tiles: 0, redraw: 0, frames: 0 },
    t0: performance.now(), ms: null, layer, tile: document.createElement("canvas") };
}

function drawTile(panel, g, k) {
  // tile k (row by row from the top): its decode, bordered by its hole depth; outside the data: hatched
  const ctx = g.layer.getContext("2d");
  const tw = g.layer.width / g.n, th = g.layer.height / g.n;
  const x = (k % g.n) * tw, y = Math.floor(k / g.n) * th;
  const img = g.images[k];
  if (!img) {
    ctx.fillStyle = "#e6e6e6"; ctx.fillRect(x, y, tw, th);
    ctx.strokeStyle = "#bbb"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(x, y + th); ctx.lineTo(x + tw, y); ctx.stroke();
    return;
  }
  paint(g.tile, panel.shape, img);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(g.tile, x + 1, y + 1, tw - 2, th - 2);
  ctx.strokeStyle = depthColour(g.depth[k], panel.map.hole_depth);
  ctx.lineWidth = Math.max(1.5, Math.min(4, tw / 10));
  ctx.strokeRect(x + ctx.lineWidth / 2, y + ctx.lineWidth / 2, tw - ctx.lineWidth, th - ctx.lineWidth);
}

const GRID_BATCH = 8; // tiles decoded together (decodeMany): ~10 ms of a z = 16 conv decoder on one core

// ----------------------------------------------------------------------------- a worker pool for the grid
// The grid's batches are decoded by Web Workers (gridWorkers(): on 4+ cores) running the very same compile() as
// this page (its source is taken from the functions in scope), so the tiles come in parallel and the page's
// own thread stays free for the pointer. Where workers cannot start (a policy, an old browser) or one fails,
// the batch is decoded here on the page's thread, as before.

const WORKER_MAIN = `
const decoders = new Map();
onmessage = (e) => {
  const { id, key, spec, codes, n } = e.data;
  try {
    if (spec) decoders.set(key, compile(spec));
    const dec = decoders.get(key);
    if (!dec) throw new Error("this worker has no decoder " + key);
    const out = dec.decodeMany(codes, n);
    postMessage({ id, out }, [out.buffer]);
  } catch (err) {
    postMessage({ id, error: String(err && err.message || err) });
  }
};`;

function gridWorkers() {
  // with 4 cores or more: one worker per core but one (the page, the compositor), at most 4. On 2 cores the page's
  // own thread was as fast or faster (bench/probe_browser.py on a loaded 2-core box: with the JS decoder 16 x 16 in
  // 432 ms here, 623 ms with 2 workers, each of which starts with a cold JIT; with the SIMD decoder 163 / 205 ms for
  // 16 x 16 / 24 x 24 here, 144 / 355 ms with --workers 2). window.__latentLabGridWorkers = n overrides.
  const forced = window.__latentLabGridWorkers;
  if (Number.isInteger(forced) && forced >= 0) return Math.min(forced, 8);
  const cores = navigator.hardwareConcurrency || 1;
  return cores >= 4 ? Math.min(4, cores - 1) : 0;
}

function workerPool() {
  const want = gridWorkers();
  if (PROBE_LAB.pool !== undefined && PROBE_LAB.poolSize === want) return PROBE_LAB.pool;
  const old = PROBE_LAB.pool;
  if (old) { // another size was asked for: its batches still out are decoded on the page
    old.workers.forEach((e) => e.w.terminate());
    const jobs = [...old.pending.values()];
    old.pending.clear();
    jobs.forEach((job) => job(null));
  }
  PROBE_LAB.pool = null;
  PROBE_LAB.poolSize = want;
  try {
    if (typeof Worker === "undefined" || typeof Blob === "undefined") return null;
    const source = [`const LITTLE_ENDIAN = ${LITTLE_ENDIAN};`, `const CHUNK = ${CHUNK};`,
      `const DECODER_WASM = ${JSON.stringify(DECODER_WASM)};`,
      ...[floats, linearStep, convTapList, gatherConvStep, conv2dStep, convTranspose2dStep, permuteStep, chwToHwc,
        hwcToChw, activationStep, wasmKernels, wasmArena, wasmLinearStep, wasmConvStep, wasmPermuteStep,
        wasmActivationStep, jsSteps, wasmSteps, NotForWasm, compile, compileWith].map(String),
      `const prod = ${String(prod)};`, WORKER_MAIN].join("\n");
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    const size = want;
    if (!size) return null;
    const pool = { workers: [], pending: new Map(), id: 0, keys: new WeakMap(), nextKey: 0 };
    for (let i = 0; i < size; i++) {
      const w = new Worker(url);
      const entry = { w, busy: 0, has: new Set() };
      w.onmessage = (e) => {
        const job = pool.pending.get(e.data.id);
        if (!job) return;
        pool.pending.delete(e.data.id);
        entry.busy--;
        job(e.data.error ? null : e.data.out);
      };
      w.onerror = (e) => { // a worker that cannot run: every batch out is decoded on the page, and so is what follows
        e.preventDefault();
        pool.broken = true;
        const jobs = [...pool.pending.values()];
        pool.pending.clear();
        jobs.forEach((job) => job(null));
      };
      pool.workers.push(entry);
    }
    PROBE_LAB.pool = pool;
  } catch (e) {
    PROBE_LAB.pool = null;
  }
  return PROBE_LAB.pool;
}

// decode codes (n arrays of d) with dec in a worker; done(Float32Array (n * size)) -- or null when no worker can
function decodeInWorker(dec, codes, done) {
  const pool = workerPool();
  if (!pool || pool.broken) return false;
  if (!pool.keys.has(dec)) pool.keys.set(dec, `d${pool.nextKey++}`);
  const key = pool.keys.get(dec);
  const entry = pool.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
  if (entry.busy >= 3) return false; // every worker has work queued: the caller waits for a frame
  const d = dec.latentDim, n = codes.length, flat = new Float32Array(n * d);
  codes.forEach((z, i) => flat.set(z, i * d));
  const id = ++pool.id;
  pool.pending.set(id, done);
  entry.busy++;
  const msg = { id, key, codes: flat, n };
  try {
    if (!entry.has.has(key)) msg.spec = dec.spec;
    entry.w.postMessage(msg, [flat.buffer]);
    entry.has.add(key);
  } catch (e) {
    pool.pending.delete(id);
    entry.busy--;
    pool.broken = true;
    return false;
  }
  return true;
}

function gridStep(panel, budgetMs) {
  const g = panel.grid;
  if (!g || g.done) return true;
  const { inverse, train, dim, typical } = panel.map;
  const t0 = performance.now();
  while (g.next < g.points.length && performance.now() - t0 < budgetMs) {
    // a batch of tiles: their codes (null outside the data), then one decodeMany of those inside
    const first = g.next, last = Math.min(g.points.length, first + GRID_BATCH);
    const codes = [];
    let tt = performance.now();
    for (let k = first; k < last; k++) {
      const [x, y] = g.points[k];
      const r = codeAtPoint(inverse, x, y, g.hint);
      if (r.triangle >= 0) g.hint = r.triangle;
      codes.push(r.code);
    }
    g.timing.inverse += performance.now() - tt;
    const inside = [];
    codes.forEach((z, i) => { if (z) inside.push(first + i); });
    const finish = (images) => {
      if (panel.grid !== g) return; // a newer grid replaced this one
      let t = performance.now();
      if (!images && inside.length) images = panel.dec.decodeMany(inside.map((k) => g.codes[k]), inside.length);
      g.timing.decode += performance.now() - t;
      const size = inside.length ? images.length / inside.length : 0;
      inside.forEach((k, i) => { g.images[k] = images.subarray(i * size, (i + 1) * size); });
      t = performance.now();
      for (let k = first; k < last; k++) drawTile(panel, g, k);
      g.timing.tiles += performance.now() - t;
      g.pending--;
      g.drawn += last - first;
    };
    const zs = inside.map((k) => codes[k - first]);
    if (inside.length && g.workers && !decodeInWorker(panel.dec, zs, finish)) {
      if (!workerPool() || workerPool().broken) g.workers = false; // no workers: decode here
      else break; // the workers are busy: dispatch more next frame
    }
    tt = performance.now();
    codes.forEach((z) => {
      g.codes.push(z);
      g.depth.push(z ? nearest(train, dim, typical, z).depth : NaN);
      g.inside.push(!!z);
      g.images.push(null);
    });
    g.timing.depth += performance.now() - tt;
    g.next = last;
    g.pending++;
    if (!inside.length || !g.workers) finish(null);
  }
  if (g.drawn >= g.points.length && !g.pending) { g.done = true; g.ms = performance.now() - g.t0; }
  return g.done;
}

// the data points of the current window, drawn once per (window, grid on/off) and kept: while a grid comes in, the
// map is redrawn every frame with new tiles, and the ~5k points were the largest part of that redraw
function dotsLayer(panel, rel, overGrid) {
  const W = panel.canvas.width, H = panel.canvas.height;
  const key = JSON.stringify([rel, overGrid, W, H, panel.baseKey]);
  if (panel.dots && panel.dots.key === key) return panel.dots.canvas;
  const canvas = panel.dots ? panel.dots.canvas : document.createElement("canvas");
  if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, W, H);
  const { xy, labels, n } = panel.map;
  const dot = overGrid ? 1.2 : 1.8;
  ctx.globalAlpha = overGrid ? 0.45 : 0.7;
  for (let i = 0; i < n; i++) {
    const [px, py] = toPixel(panel, rel, xy[2 * i], xy[2 * i + 1]);
    if (px < -2 || py < -2 || px > W + 2 || py > H + 2) continue;
    ctx.fillStyle = PALETTE[labels[i] % PALETTE.length];
    ctx.fillRect(px - dot, py - dot, 2 * dot, 2 * dot);
  }
  ctx.globalAlpha = 1;
  panel.dots = { key, canvas };
  return canvas;
}

function drawBase(panel, rel, data) {
  // the layer under the pointer: decoded tiles (if any), the data points, the pinned probes
  const W = panel.canvas.width, H = panel.canvas.height;
  const b = panel.base;
  if (b.width !== W || b.height !== H) { b.width = W; b.height = H; }
  const ctx = b.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, W, H);
  const g = panel.grid;
  if (g) ctx.drawImage(g.layer, 0, 0);
  ctx.drawImage(dotsLayer(panel, rel, !!g), 0, 0);
  (panel.pins || []).forEach((p, k) => {
    const [px, py] = toPixel(panel, rel, p.xy[0], p.xy[1]);
    ctx.strokeStyle = "#000"; ctx.fillStyle = "#ffd400"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    ctx.fillStyle = "#000"; ctx.font = "bold 10px sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    ctx.fillText(String(k + 1), px, py + 0.5);
  });
}

function drawFrame(panel, uv) {
  const ctx = panel.canvas.getContext("2d");
  ctx.drawImage(panel.base, 0, 0);
  if (!uv) return;
  const W = panel.canvas.width, H = panel.canvas.height;
  const px = uv[0] * W, py = (1 - uv[1]) * H;
  ctx.strokeStyle = "rgba(0,0,0,0.8)"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(px - 9, py); ctx.lineTo(px + 9, py); ctx.moveTo(px, py - 9); ctx.lineTo(px, py + 9); ctx.stroke();
}

function probePanel(panel, rel, uv) {
  // decode what lies under relative position uv in this panel; paint it beside the map
  const [x, y] = mapPoint(panel, rel, uv[0], uv[1]);
  const r = codeAtPoint(panel.map.inverse, x, y, panel.hint);
  if (r.triangle >= 0) panel.hint = r.triangle;
  panel.fig.setAttribute("data-x", String(x));
  panel.fig.setAttribute("data-y", String(y));
  if (!r.code) {
    panel.last = { xy: [x, y], code: null };
    panel.fig.setAttribute("data-inside", "false");
    const ctx = panel.probe.getContext("2d");
    ctx.fillStyle = "#ddd"; ctx.fillRect(0, 0, panel.probe.width, panel.probe.height);
    panel.probe.__llDecoded = null; panel.probe.__llCode = null;
    if (panel.probe.__llBars) { panel.probe.__llBars = null; panel.probe.removeAttribute("data-bars"); }
    panel.readout.textContent = `(${x.toFixed(2)}, ${y.toFixed(2)}): outside the data — beyond the convex hull of ` +
      "the map there is no triangle to interpolate in, so nothing is decoded (no silent extrapolation).";
    return;
  }
  const img = panel.dec.decode(r.code);
  paint(panel.probe, panel.shape, img);
  panel.probe.__llDecoded = img; panel.probe.__llCode = r.code;
  const nn = nearest(panel.map.train, panel.map.dim, panel.map.typical, r.code);
  panel.last = { xy: [x, y], code: r.code, nn };
  panel.fig.setAttribute("data-inside", "true");
  const zs = Array.from(r.code.slice(0, 4), (v) => v.toFixed(2)).join(", ") + (r.code.length > 4 ? ", …" : "");
  panel.readout.textContent = `map (${x.toFixed(2)}, ${y.toFixed(2)}) · z = (${zs}) · nearest data point ` +
    `#${nn.index} at ${nn.distance.toFixed(3)} · hole depth ${nn.depth.toFixed(2)}`;
}

// ----------------------------------------------------------------------------- test and bench hooks

window.latentLabProbe = {
  // the inverse alone: spec (core.cartography to_browser()) and points [[x, y], ...] -> {codes, inside}
  codesAt(spec, points) {
    let hint = 0;
    const codes = [], inside = [];
    for (const [x, y] of points) {
      const r = codeAtPoint(spec, x, y, hint);
      if (r.triangle >= 0) hint = r.triangle;
      codes.push(r.code ? Array.from(r.code) : null);
      inside.push(!!r.code);
    }
    return { codes, inside };
  },
  // inverse + the decoder this tab holds for sha -> {codes, inside, decoded (null outside)}
  probeAt(sha, spec, points) {
    const dec = PROBE_LAB.decoders.get(sha) || LAB.decoders.get(sha);
    if (!dec) throw new Error(`no decoder for ${sha} in this tab`);
    const { codes, inside } = window.latentLabProbe.codesAt(spec, points);
    return { codes, inside, decoded: codes.map((z) => (z ? Array.from(dec.decode(z)) : null)) };
  },
  // every panel's last grid: {title, n, points, codes, depth and images (null outside), ms, workers}
  grids() {
    // the elements live in shadow roots (document.querySelectorAll does not see them): a registry, in page order
    PROBE_LAB.roots = PROBE_LAB.roots.filter((r) => r.isConnected);
    const roots = PROBE_LAB.roots.slice().sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
    return roots.flatMap((root) => (root.__lpView?.panels || []).map((p) => ({
      title: p.title, n: p.grid?.n ?? 0, win: p.grid?.win ?? null, done: !!p.grid?.done, ms: p.grid?.ms ?? null, points: p.grid?.points ?? [],
      timing: p.grid ? { ...p.grid.timing } : null, kind: p.dec?.kind ?? null, // kind: "wasm-simd" or "js" decode
      workers: p.grid?.workers ? PROBE_LAB.pool.workers.length : 0, // 0: decoded on the page's thread
      codes: (p.grid?.codes ?? []).map((z) => (z ? Array.from(z) : null)),
      depth: (p.grid?.depth ?? []).map((v) => (Number.isFinite(v) ? v : null)),
      images: (p.grid?.images ?? []).map((x) => (x ? Array.from(x) : null)),
    })));
  },
  paints: () => PROBE_LAB.paints.slice(),
  // draw the grids of every element again (bench/probe_browser.py: a grid timed on a page that has settled)
  regrid() {
    PROBE_LAB.roots.filter((r) => r.isConnected && r.__lpView?.gridNow).forEach((r) => {
      r.__lpView.gridKey = null;
      r.__lpView.gridNow();
    });
  },
};

// ----------------------------------------------------------------------------- the component

function fromBlob(raw) {
  // map data as sent by latent_probe.map_payload: typed arrays decoded once
  return { ...raw, xy: floats(raw.xy), train: floats(raw.train) };
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let root = parentElement.querySelector(".lp-root");
  if (!root) {
    root = el("div", { class: "lp-root" }, parentElement);
    PROBE_LAB.roots.push(root);
  }
  const view = (root.__lpView = root.__lpView || { have: null, rel: [0, 1, 0, 1], held: new Map() });
  // every message to the server goes through here, counted (data-reports): hovering must send none
  view.setStateValue = (name, value) => {
    root.setAttribute("data-reports", String(+(root.getAttribute("data-reports") || 0) + 1));
    setStateValue(name, value);
  };

  // 1. the blobs: decoders and map data, from this message or from this tab
  const errors = [];
  for (const [key, payload] of Object.entries(data.blobs)) {
    if (view.held.has(key)) continue;
    let value = PROBE_LAB.blobs.get(key);
    if (payload) {
      try {
        if (key.startsWith("dec:")) {
          const dec = LAB.decoders.get(key.slice(4)) || compile(payload);
          const probe = dec.decode(new Float64Array(dec.latentDim));
          if (!probe.every(Number.isFinite)) throw new Error("the decoder gives non-finite values");
          PROBE_LAB.decoders.set(key.slice(4), dec);
          value = dec;
        } else value = fromBlob(payload);
      } catch (e) {
        errors.push(`${key}: ${e.message}`);
        continue;
      }
    } else if (!value && key.startsWith("dec:")) value = LAB.decoders.get(key.slice(4));
    if (value) { view.held.set(key, value); keepBlob(key, value); }
  }
  const have = Object.keys(data.blobs).filter((k) => view.held.has(k)).sort();
  const haveText = JSON.stringify(have) + (errors.length ? JSON.stringify(errors) : "");
  if (view.have !== haveText) {
    view.have = haveText;
    view.setStateValue("have", errors.length ? { keys: have, errors } : { keys: have });
  }
  if (have.length < Object.keys(data.blobs).length) {
    root.setAttribute("data-ready", errors.length ? "error" : "missing");
    return;
  }
  root.setAttribute("data-ready", "live");

  // 2. the panels: rebuilt when the layout changes
  const layout = JSON.stringify([data.panels.map((p) => [p.title, p.map, p.decoder]), data.size, data.probe_size,
    data.shape, data.chart || null, data.chart_width || null]);
  if (view.layout !== layout) {
    root.replaceChildren();
    const host = el("div", { class: `lp-panels${data.panels.length > 1 ? " lp-compact" : ""}` }, root);
    view.panels = data.panels.map((p) => {
      const panel = makePanel(host, p, data);
      panel.title = p.title;
      panel.canvas.width = panel.canvas.height = data.size;
      return panel;
    });
    const bar = el("div", { class: "lp-bar" }, root);
    view.reset = el("button", { class: "lp-reset", type: "button", text: "Reset view" }, bar);
    view.status = el("span", { class: "lp-status" }, bar);
    view.layout = layout;
    view.gridKey = null;
    view.reset.addEventListener("click", () => { view.rel = [0, 1, 0, 1]; view.redrawBase(); view.settled(); view.schedule(); });
  }
  data.panels.forEach((p, i) => {
    const panel = view.panels[i];
    panel.map = view.held.get(p.map);
    panel.dec = view.held.get(`dec:${p.decoder}`);
    panel.shape = data.shape;
    panel.pins = p.pins || [];
    if (panel.baseKey !== p.map) { panel.baseWin = baseWindow(panel.map.xy, panel.map.n); panel.baseKey = p.map; }
  });
  view.data = data;
  // the zoom window the server holds (the URL's `view`, or the echo of ours): adopted whenever it changes there
  const serverView = JSON.stringify(data.view || null);
  if (view.serverView !== serverView) {
    view.serverView = serverView;
    const rel = data.view || [0, 1, 0, 1];
    if (rel.length === 4 && rel.every(Number.isFinite) && rel[0] < rel[1] && rel[2] < rel[3]) view.rel = rel.slice();
  }

  const redrawBase = () => view.panels.forEach((p) => drawBase(p, view.rel, view.data));
  const gridNow = () => {
    const n = view.data.shape.length === 1 ? 0 : view.data.grid; // no grid of tiny bar charts (the server sends 0 too)
    const key = JSON.stringify([n, view.rel, layout]);
    if (key === view.gridKey) return;
    view.gridKey = key;
    const token = (view.gridToken = (view.gridToken || 0) + 1);
    const t0 = performance.now();
    view.panels.forEach((p) => { if (n) startGrid(p, view.rel, n); else p.grid = null; });
    view.gridDrawn = -1;
    const step = () => {
      if (token !== view.gridToken) return; // a newer window or size: this grid is dropped
      // ~50 ms of tiles per frame, then one repaint (the probe itself is not decoded again meanwhile)
      const done = view.panels.map((p) => gridStep(p, 50 / view.panels.length)).every(Boolean);
      // repaint only when tiles came in (while workers decode, most frames bring none: the page's thread stays free)
      const drawn = view.panels.reduce((a, p) => a + p.grid.drawn, 0);
      if (drawn !== view.gridDrawn || done) {
        view.gridDrawn = drawn;
        const t = performance.now();
        redrawBase();
        view.panels.forEach((p) => drawFrame(p, view.uv));
        view.panels[0].grid.timing.redraw += performance.now() - t;
      }
      view.panels[0].grid.timing.frames++;
      if (!done) { view.status.textContent = `decoding the manifold… ${view.panels[0].grid.drawn} / ${n * n}`; requestAnimationFrame(step); return; }
      const ms = performance.now() - t0;
      root.setAttribute("data-grid-ms", String(ms));
      root.setAttribute("data-grids", String(+(root.getAttribute("data-grids") || 0) + 1));
      view.status.textContent = `${view.panels.length > 1 ? view.panels.length + " × " : ""}${n}×${n} decoded manifold ` +
        `drawn in this browser in ${ms.toFixed(0)} ms` +
        (view.panels[0].grid.workers ? ` (${PROBE_LAB.pool.workers.length} workers)` : "") + `; tile border = hole depth (green ≤ 1: as filled as the data, ` +
        `orange: sparse, red: a hole as core.holes counts it, grey: outside the data)`;
    };
    if (n) step();
    else { redrawBase(); view.status.textContent = ""; }
  };
  const frame = () => {
    view.frame = 0;
    const t0 = performance.now();
    if (view.uv) view.panels.forEach((p) => probePanel(p, view.rel, view.uv));
    view.panels.forEach((p) => drawFrame(p, view.uv));
    const decodeMs = performance.now() - t0;
    requestAnimationFrame(() => {
      root.setAttribute("data-paints", String(+(root.getAttribute("data-paints") || 0) + 1));
      PROBE_LAB.paints.push({ t: performance.now(), decodeMs });
      if (PROBE_LAB.paints.length > 1000) PROBE_LAB.paints.splice(0, 500);
    });
  };
  view.schedule = () => { if (!view.frame) view.frame = requestAnimationFrame(frame); };
  // a zoom or pan has rested: the window to 10 significant digits (ui.state.format_view: what the URL keeps, so the
  // echo changes nothing),
  // the grid of it, and the window to the server (state "view": a rerun, like a pin) where the page asks for it
  view.settled = () => {
    const r = view.rel.map((v) => Number(v.toPrecision(10)));
    // what ui.state.valid_view takes; beyond it (a zoom far out) the window stays in this tab only
    const valid = r.every((v) => Number.isFinite(v) && Math.abs(v) <= 1e3) && r[1] - r[0] >= 1e-6 && r[3] - r[2] >= 1e-6;
    if (valid) view.rel = r;
    view.gridNow();
    if (!valid || !view.data.reports_view) return;
    const text = JSON.stringify(r.join() === "0,1,0,1" ? null : r);
    if (text === view.serverView) return;
    view.serverView = text;
    view.setStateValue("view", r);
  };
  view.redrawBase = redrawBase;
  view.gridNow = gridNow;

  if (!view.wired) {
    view.wired = true;
    const uvOf = (e) => {
      const r = e.target.getBoundingClientRect();
      return [(e.clientX - r.left) / r.width, 1 - (e.clientY - r.top) / r.height];
    };
    const isMap = (e) => e.target.classList && e.target.classList.contains("lp-map");
    root.addEventListener("pointermove", (e) => {
      if (!isMap(e)) return;
      const uv = uvOf(e);
      if (view.drag) { // pan: the shared relative view follows the pointer
        const du = uv[0] - view.drag.uv[0], dv = uv[1] - view.drag.uv[1];
        if (Math.abs(du) + Math.abs(dv) > 0.01) view.drag.moved = true;
        if (view.drag.moved) {
          const w = view.drag.rel[1] - view.drag.rel[0], h = view.drag.rel[3] - view.drag.rel[2];
          view.rel = [view.drag.rel[0] - du * w, view.drag.rel[1] - du * w, view.drag.rel[2] - dv * h, view.drag.rel[3] - dv * h];
          view.redrawBase();
          clearTimeout(view.gridTimer);
          view.gridTimer = setTimeout(() => view.settled(), 200);
        }
        return;
      }
      view.uv = uv;
      view.schedule();
    });
    root.addEventListener("pointerdown", (e) => { if (isMap(e)) view.drag = { uv: uvOf(e), rel: view.rel.slice(), panel: e.target }; });
    root.addEventListener("pointerup", (e) => {
      const drag = view.drag;
      view.drag = null;
      if (!drag || drag.moved || !isMap(e) || !view.data.pinnable) return;
      const i = view.panels.findIndex((p) => p.canvas === e.target);
      view.uv = uvOf(e);
      probePanel(view.panels[i], view.rel, view.uv);
      const last = view.panels[i].last;
      if (!last.code) { view.status.textContent = "That point is outside the data: nothing to pin."; return; }
      view.pinCount = (view.pinCount || 0) + 1;
      view.setStateValue("pin", { n: Date.now() + view.pinCount, xy: last.xy, z: Array.from(last.code) });
    });
    root.addEventListener("pointerleave", () => { view.drag = null; });
    root.addEventListener("wheel", (e) => {
      if (!isMap(e)) return;
      e.preventDefault();
      const [u, v] = uvOf(e);
      const f = Math.exp(Math.sign(e.deltaY) * 0.15); // > 1 zooms out
      const [a, b, c, d] = view.rel;
      const cu = a + u * (b - a), cv = c + v * (d - c);
      view.rel = [cu - (cu - a) * f, cu + (b - cu) * f, cv - (cv - c) * f, cv + (d - cv) * f];
      view.redrawBase();
      view.schedule();
      clearTimeout(view.gridTimer);
      view.gridTimer = setTimeout(() => view.settled(), 200);
    }, { passive: false });
  }
  redrawBase();
  gridNow();
  if (!view.uv) view.uv = [0.5, 0.5];
  view.schedule();
}
