// Latent Lab: decode latent codes in the browser while a slider moves (Streamlit components v2, inline).
//
// The server sends a decoder spec (core/webdecoder.py) once per checkpoint; it is kept in
// window.__latentLab keyed by the checkpoint's sha256, so later reruns send only codes. While a slider
// moves, the code is rebuilt, decoded with plain typed-array loops and painted on a canvas once per
// animation frame; the server hears the value only when the user lets go (state "values"). "ready"
// tells the server that this browser holds (and has run) the decoder of a sha256, or why it cannot.

const LAB = (window.__latentLab = window.__latentLab || { decoders: new Map(), paints: [] });
const MAX_DECODERS = 4; // a few checkpoints' decoders (~0.5 MB each) kept in this tab, least recently used out
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ----------------------------------------------------------------------------- the spec -> a decode function

function floats(b64, n) {
  if (b64 === null || b64 === undefined) return null;
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  if (!LITTLE_ENDIAN) {
    for (let i = 0; i < bytes.length; i += 4) {
      const a = bytes[i], b = bytes[i + 1];
      bytes[i] = bytes[i + 3]; bytes[i + 1] = bytes[i + 2]; bytes[i + 2] = b; bytes[i + 3] = a;
    }
  }
  const out = new Float32Array(bytes.buffer);
  if (n !== undefined && out.length !== n) throw new Error(`expected ${n} weights, got ${out.length}`);
  return out;
}

const prod = (a) => a.reduce((p, v) => p * v, 1);

function linearStep(L) {
  const nIn = L.in, nOut = L.out;
  const w = floats(L.weight, nIn * nOut), b = floats(L.bias, nOut);
  const out = new Float64Array(nOut);
  return {
    size: nOut,
    run(x) {
      for (let o = 0; o < nOut; o++) {
        let s = b ? b[o] : 0;
        const row = o * nIn;
        for (let i = 0; i < nIn; i++) s += w[row + i] * x[i];
        out[o] = s;
      }
      return out;
    },
  };
}

function conv2dStep(L) {
  const [ci, h, wd] = L.in_shape, [co, oh, ow] = L.out_shape;
  const [kh, kw] = L.kernel, [sh, sw] = L.stride, [ph, pw] = L.padding, [dh, dw] = L.dilation;
  const w = floats(L.weight, co * ci * kh * kw), b = floats(L.bias, co);
  const out = new Float64Array(co * oh * ow);
  return {
    size: out.length,
    run(x) {
      for (let c = 0; c < co; c++) {
        for (let oy = 0; oy < oh; oy++) {
          for (let ox = 0; ox < ow; ox++) {
            let s = b ? b[c] : 0;
            for (let k = 0; k < ci; k++) {
              for (let ky = 0; ky < kh; ky++) {
                const iy = oy * sh - ph + ky * dh;
                if (iy < 0 || iy >= h) continue;
                const xrow = (k * h + iy) * wd, wrow = ((c * ci + k) * kh + ky) * kw;
                for (let kx = 0; kx < kw; kx++) {
                  const ix = ox * sw - pw + kx * dw;
                  if (ix >= 0 && ix < wd) s += x[xrow + ix] * w[wrow + kx];
                }
              }
            }
            out[(c * oh + oy) * ow + ox] = s;
          }
        }
      }
      return out;
    },
  };
}

function convTranspose2dStep(L) {
  const [ci, h, wd] = L.in_shape, [co, oh, ow] = L.out_shape;
  const [kh, kw] = L.kernel, [sh, sw] = L.stride, [ph, pw] = L.padding, [dh, dw] = L.dilation;
  const raw = floats(L.weight, ci * co * kh * kw), b = floats(L.bias, co);
  // torch's (Cin, Cout, kh, kw) -> (Cin, kh, kw, Cout): the innermost loop then reads contiguous weights
  const w = new Float32Array(raw.length);
  for (let k = 0; k < ci; k++)
    for (let c = 0; c < co; c++)
      for (let ky = 0; ky < kh; ky++)
        for (let kx = 0; kx < kw; kx++) w[((k * kh + ky) * kw + kx) * co + c] = raw[((k * co + c) * kh + ky) * kw + kx];
  const plane = oh * ow;
  const out = new Float64Array(co * plane);
  return {
    size: out.length,
    run(x) {
      for (let c = 0; c < co; c++) out.fill(b ? b[c] : 0, c * plane, (c + 1) * plane);
      for (let k = 0; k < ci; k++) {
        for (let iy = 0; iy < h; iy++) {
          for (let ix = 0; ix < wd; ix++) {
            const v = x[(k * h + iy) * wd + ix];
            if (v === 0) continue; // after a ReLU many inputs are exactly zero
            for (let ky = 0; ky < kh; ky++) {
              const oy = iy * sh - ph + ky * dh;
              if (oy < 0 || oy >= oh) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ox = ix * sw - pw + kx * dw;
                if (ox < 0 || ox >= ow) continue;
                const wbase = ((k * kh + ky) * kw + kx) * co, obase = oy * ow + ox;
                for (let c = 0; c < co; c++) out[c * plane + obase] += v * w[wbase + c];
              }
            }
          }
        }
      }
      return out;
    },
  };
}

function activationStep(L, size) {
  const out = new Float64Array(size);
  const f = {
    relu: (v) => (v > 0 ? v : 0),
    leaky_relu: (v) => (v >= 0 ? v : L.slope * v),
    tanh: Math.tanh,
    sigmoid: (v) => 1 / (1 + Math.exp(-v)),
  }[L.op];
  return {
    size,
    run(x) {
      for (let i = 0; i < size; i++) out[i] = f(x[i]);
      return out;
    },
  };
}

function compile(spec) {
  if (spec.format !== "latent-lab-decoder/1") throw new Error(`unknown decoder format ${spec.format}`);
  const steps = [];
  let size = spec.latent_dim;
  for (const L of spec.layers) {
    let step;
    if (L.op === "linear") {
      if (L.in !== size) throw new Error(`linear expects ${L.in} inputs, gets ${size}`);
      step = linearStep(L);
    } else if (L.op === "conv2d") step = conv2dStep(L);
    else if (L.op === "conv_transpose2d") step = convTranspose2dStep(L);
    else if (L.op === "reshape") {
      if (prod(L.shape) !== size) throw new Error(`cannot reshape ${size} values to ${L.shape}`);
      continue; // activations are flat arrays already
    } else if (["relu", "leaky_relu", "tanh", "sigmoid"].includes(L.op)) step = activationStep(L, size);
    else throw new Error(`unknown layer ${L.op}`);
    if (L.in_shape && prod(L.in_shape) !== size) throw new Error(`${L.op} expects ${L.in_shape}, gets ${size}`);
    steps.push(step);
    size = step.size;
  }
  if (size !== prod(spec.output_shape)) throw new Error(`decoder ends with ${size} values, not ${spec.output_shape}`);
  const sigmoid = spec.output === "sigmoid";
  const d = spec.latent_dim;
  return {
    spec,
    latentDim: d,
    shape: spec.output_shape,
    // z (d numbers) -> a new Float32Array (*output_shape), what model.decode returns
    decode(z) {
      if (z.length !== d) throw new Error(`expected a code of length ${d}, got ${z.length}`);
      let x = Float64Array.from(z);
      for (const s of steps) x = s.run(x);
      const out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = sigmoid ? 1 / (1 + Math.exp(-x[i])) : x[i];
      return out;
    },
  };
}

function remember(sha, decoder) {
  LAB.decoders.delete(sha);
  LAB.decoders.set(sha, decoder);
  while (LAB.decoders.size > MAX_DECODERS) LAB.decoders.delete(LAB.decoders.keys().next().value);
}

function lookup(sha) {
  const dec = LAB.decoders.get(sha);
  if (dec) remember(sha, dec); // most recently used
  return dec;
}

// The test hook: window.latentLab.decode(sha256, [[z...], ...]) -> arrays of decoded values (browser decode).
window.latentLab = {
  shas: () => [...LAB.decoders.keys()],
  decode(sha, zs) {
    const dec = LAB.decoders.get(sha);
    if (!dec) throw new Error(`no decoder for ${sha} in this tab`);
    return zs.map((z) => Array.from(dec.decode(z)));
  },
  paints: () => LAB.paints.slice(),
  codeAt: (path, values) => Array.from(codeAt(path, values)),
};

// ----------------------------------------------------------------------------- codes from slider values

function codeAt(path, values) {
  if (path.kind === "directions") {
    // z = base + sum_i t_i dirs_i (ISDA: dirs_i = sqrt(lam e_i) v_i)
    const z = Float64Array.from(path.base);
    path.dirs.forEach((dir, i) => {
      const t = values[i];
      for (let j = 0; j < z.length; j++) z[j] += t * dir[j];
    });
    return z;
  }
  const lam = values[0], z0 = path.z0, z1 = path.z1, n = z0.length;
  const linear = new Float64Array(n);
  for (let j = 0; j < n; j++) linear[j] = (1 - lam) * z0[j] + lam * z1[j];
  if (path.kind !== "slerp") return linear;
  // core.latent.interpolate_latent(mode="slerp"): great circle, linear where (anti)parallel or zero
  let dot = 0, n0 = 0, n1 = 0;
  for (let j = 0; j < n; j++) { dot += z0[j] * z1[j]; n0 += z0[j] * z0[j]; n1 += z1[j] * z1[j]; }
  n0 = Math.sqrt(n0); n1 = Math.sqrt(n1);
  const cos = Math.min(1, Math.max(-1, dot / Math.max(n0 * n1, 1e-12)));
  const omega = Math.acos(cos), so = Math.sin(omega);
  if (Math.abs(so) < 1e-6 || n0 < 1e-12 || n1 < 1e-12) return linear;
  const a = Math.sin((1 - lam) * omega) / so, b = Math.sin(lam * omega) / so;
  const z = new Float64Array(n);
  for (let j = 0; j < n; j++) z[j] = a * z0[j] + b * z1[j];
  return z;
}

// ----------------------------------------------------------------------------- painting

function paint(canvas, shape, x) {
  // x (C, H, W) in [0, 1] -> the canvas's pixels, like ui.show.to_uint8 (clip, *255, round)
  const [c, h, w] = shape.length === 3 ? shape : [1, 1, shape[0]];
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const plane = h * w;
  const byte = (v) => Math.floor(Math.min(1, Math.max(0, v)) * 255 + 0.5);
  for (let p = 0; p < plane; p++) {
    const r = byte(x[p]);
    const g = c >= 3 ? byte(x[plane + p]) : r;
    const b = c >= 3 ? byte(x[2 * plane + p]) : r;
    img.data[4 * p] = r; img.data[4 * p + 1] = g; img.data[4 * p + 2] = b; img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function caption(template, values) {
  // "{0}" -> values[0] with two decimals, "{+0}" -> the same with a sign
  return template.replace(/\{(\+?)(\d+)\}/g, (_, sign, i) => {
    const v = values[+i];
    return (sign && v >= 0 ? "+" : "") + v.toFixed(2);
  });
}

// ----------------------------------------------------------------------------- the component

function el(tag, attrs = {}, parent = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

function buildUi(root, data, view) {
  root.replaceChildren();
  view.inputs = [];
  view.readouts = [];
  const sliders = el("div", { class: "ll-sliders", style: `--ll-cols: ${data.slider_columns || 1}` }, root);
  data.sliders.forEach((s, i) => {
    const box = el("label", { class: "ll-slider" }, sliders);
    const head = el("div", { class: "ll-slider-head" }, box);
    el("span", { class: "ll-slider-label", text: s.label }, head);
    view.readouts.push(el("span", { class: "ll-slider-value" }, head));
    const input = el("input", {
      type: "range", min: s.min, max: s.max, step: s.step, "data-index": i,
      "aria-label": s.label, "data-testid": "llDecoderSlider",
    }, box);
    input.value = s.value;
    view.inputs.push(input);
  });
  const panels = el("div", { class: "ll-panels" }, root);
  view.panels = data.panels.map((p) => {
    const fig = el("figure", { class: "ll-panel" }, panels);
    const title = el("div", { class: "ll-panel-title" }, fig);
    const canvas = el("canvas", { class: "ll-canvas", "data-kind": p.kind, style: `width: ${data.width}px` }, fig);
    const cap = el("figcaption", {}, fig);
    return { spec: p, title, canvas, cap };
  });
  view.status = el("div", { class: "ll-status" }, root);
}

function refreshPanels(view, data) {
  // the pictures a rerun may change without changing the layout (another pair, another sample)
  view.panels.forEach((panel, i) => {
    const p = (panel.spec = data.panels[i]);
    panel.title.textContent = p.title;
    if (p.kind === "mix" && (panel.x0src !== p.x0 || panel.x1src !== p.x1)) {
      panel.x0 = floats(p.x0); panel.x1 = floats(p.x1); panel.mix = new Float32Array(panel.x0.length);
      panel.x0src = p.x0; panel.x1src = p.x1;
    }
    if (p.kind === "image" && panel.xsrc !== p.x) {
      paint(panel.canvas, data.shape, floats(p.x));
      panel.xsrc = p.x;
    }
  });
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let root = parentElement.querySelector(".ll-root");
  if (!root) root = el("div", { class: "ll-root" }, parentElement);
  const view = (root.__llView = root.__llView || { asked: null });
  view.setStateValue = setStateValue;
  root.setAttribute("data-sha", data.sha);

  // 1. the decoder: from this message's spec, or from this tab's cache
  let dec = lookup(data.sha);
  if (!dec && data.spec) {
    try {
      dec = compile(data.spec);
      const probe = dec.decode(new Float64Array(dec.latentDim));
      if (!probe.every(Number.isFinite)) throw new Error("the decoder gives non-finite values");
      remember(data.sha, dec);
    } catch (e) {
      root.setAttribute("data-ready", "error");
      const why = `error: ${e.message}`;
      if (view.asked !== why) { view.asked = why; setStateValue("ready", why); }
      return;
    }
  }
  if (!dec) {
    // the server thinks this tab holds the decoder, but it does not (a new tab, or evicted): ask for it again
    root.setAttribute("data-ready", "missing");
    const why = `missing: ${data.sha}`;
    if (view.asked !== why) { view.asked = why; setStateValue("ready", why); }
    return;
  }
  if (!data.live) {
    // probe: tell the server this browser can decode this checkpoint; it then swaps its slider for ours
    root.setAttribute("data-ready", "probe");
    if (view.asked !== data.sha) { view.asked = data.sha; setStateValue("ready", data.sha); }
    return;
  }
  view.asked = data.sha;
  root.setAttribute("data-ready", data.sha);

  // 2. the UI: rebuilt when its layout changes, otherwise kept (and a drag in progress is left alone)
  const layout = JSON.stringify([data.sha, data.sliders.map((s) => [s.label, s.min, s.max, s.step]),
    data.panels.map((p) => p.kind), data.width, data.shape, data.slider_columns]);
  if (view.layout !== layout || !root.querySelector(".ll-sliders")) {
    buildUi(root, data, view);
    view.layout = layout;
    view.dragging = false;
  }
  refreshPanels(view, data);
  view.data = data;
  view.dec = dec;
  const serverValues = data.sliders.map((s) => +s.value);
  if (!view.dragging && !view.pendingCommit) view.inputs.forEach((input, i) => { input.value = serverValues[i]; });

  const values = () => view.inputs.map((input) => +input.value);
  const draw = () => {
    view.frame = 0;
    const v = values();
    const t0 = performance.now();
    let shared = null; // the decode of data.path, for the panels without a path of their own
    const decodeOf = (p) => (p.spec.path ? view.dec.decode(codeAt(p.spec.path, v))
      : (shared = shared || view.dec.decode(codeAt(view.data.path, v))));
    const decoded = view.panels.map((p) => (p.spec.kind === "decoded" ? decodeOf(p) : null));
    const decodeMs = performance.now() - t0;
    view.panels.forEach((p, k) => {
      if (p.spec.kind === "decoded") {
        paint(p.canvas, view.data.shape, decoded[k]);
        p.canvas.__llDecoded = decoded[k]; // the values painted, before 8-bit rounding (for the tests)
      } else if (p.spec.kind === "mix") {
        const lam = v[0];
        for (let i = 0; i < p.mix.length; i++) p.mix[i] = (1 - lam) * p.x0[i] + lam * p.x1[i];
        paint(p.canvas, view.data.shape, p.mix);
      }
      if (p.spec.caption) p.cap.textContent = caption(p.spec.caption, v);
    });
    view.readouts.forEach((r, i) => { r.textContent = v[i].toFixed(2); });
    const count = decoded.filter(Boolean).length;
    view.status.textContent = `decoded in this browser in ${decodeMs.toFixed(1)} ms` + (count > 1 ? ` (${count} images)` : "");
    // "painted" = the frame after the canvas changed has been produced
    requestAnimationFrame(() => {
      const n = +(root.getAttribute("data-paints") || 0) + 1;
      root.setAttribute("data-paints", String(n));
      LAB.paints.push({ t: performance.now(), decodeMs, values: v });
      if (LAB.paints.length > 1000) LAB.paints.splice(0, 500);
    });
  };
  const schedule = () => { if (!view.frame) view.frame = requestAnimationFrame(draw); };
  const commit = () => {
    clearTimeout(view.pendingCommit);
    view.pendingCommit = 0;
    const v = values();
    if (JSON.stringify(v) !== JSON.stringify(view.committed)) {
      view.committed = v;
      view.setStateValue("values", v);
    }
  };
  view.committed = serverValues;

  if (!view.wired) {
    view.wired = true;
    // pointer drags: decode every frame, tell the server on release; keys: tell it once the keys rest
    root.addEventListener("input", (e) => { if (e.target.type === "range") schedule(); });
    root.addEventListener("pointerdown", (e) => { if (e.target.type === "range") view.dragging = true; });
    const release = () => {
      if (!view.dragging) return;
      view.dragging = false;
      commit();
    };
    window.addEventListener("pointerup", release);
    window.addEventListener("pointercancel", release);
    root.addEventListener("change", (e) => {
      if (e.target.type !== "range" || view.dragging) return;
      clearTimeout(view.pendingCommit);
      view.pendingCommit = setTimeout(commit, 400);
    });
    // the component's own cleanup is only called on unmount; the listeners live on root and window
    view.cleanup = () => {
      window.removeEventListener("pointerup", release);
      window.removeEventListener("pointercancel", release);
    };
  }
  schedule();
  return () => view.cleanup && view.cleanup();
}
