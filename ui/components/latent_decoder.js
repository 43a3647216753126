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

// How the decode is laid out (all for speed; it computes what torch does, up to float32 rounding):
// - activations are Float32Arrays (torch's own precision), preallocated once per decoder: a decode allocates
//   only its result; sums are accumulated in doubles;
// - image activations are kept channels-last (H, W, C) inside the decoder: a convolution is then a gather
//   per output pixel whose innermost loop runs over contiguous input channels and contiguous weights, with
//   the valid kernel taps of every output pixel listed once at compile time (no bound checks per multiply),
//   and 8 output channels accumulated at once (each input value loaded once for all 8, and 8 independent sums
//   keep the adds from waiting on each other); torch's (C, H, W)
//   order is restored by a permutation step wherever a flat vector is needed (before a linear, at the end);
// - decodeMany runs a chunk of codes through each layer in turn, so a linear layer is a small matrix-matrix
//   product that loads each weight once for 2 codes.
const CHUNK = 16; // codes per pass of decodeMany (activations for 16 codes of the z = 16 conv decoder: ~0.6 MB)

function linearStep(L, chunk) {
  const nIn = L.in, nOut = L.out;
  const w = floats(L.weight, nIn * nOut), b = floats(L.bias, nOut) || new Float32Array(nOut);
  const out = new Float32Array(chunk * nOut);
  return {
    size: nOut,
    run(x, m) {
      // out (m, nOut) = x (m, nIn) @ w.T + b, 2 codes x 4 outputs at a time
      let j = 0;
      for (; j + 2 <= m; j += 2) {
        const x0 = j * nIn, x1 = x0 + nIn, o0 = j * nOut, o1 = o0 + nOut;
        let o = 0;
        for (; o + 4 <= nOut; o += 4) {
          const r0 = o * nIn, r1 = r0 + nIn, r2 = r1 + nIn, r3 = r2 + nIn;
          let a0 = b[o], a1 = b[o + 1], a2 = b[o + 2], a3 = b[o + 3];
          let c0 = a0, c1 = a1, c2 = a2, c3 = a3;
          for (let i = 0; i < nIn; i++) {
            const u = x[x0 + i], v = x[x1 + i];
            const w0 = w[r0 + i], w1 = w[r1 + i], w2 = w[r2 + i], w3 = w[r3 + i];
            a0 += u * w0; a1 += u * w1; a2 += u * w2; a3 += u * w3;
            c0 += v * w0; c1 += v * w1; c2 += v * w2; c3 += v * w3;
          }
          out[o0 + o] = a0; out[o0 + o + 1] = a1; out[o0 + o + 2] = a2; out[o0 + o + 3] = a3;
          out[o1 + o] = c0; out[o1 + o + 1] = c1; out[o1 + o + 2] = c2; out[o1 + o + 3] = c3;
        }
        for (; o < nOut; o++) {
          const r = o * nIn;
          let a = b[o], c = b[o];
          for (let i = 0; i < nIn; i++) { a += x[x0 + i] * w[r + i]; c += x[x1 + i] * w[r + i]; }
          out[o0 + o] = a; out[o1 + o] = c;
        }
      }
      for (; j < m; j++) {
        const x0 = j * nIn, o0 = j * nOut;
        let o = 0;
        for (; o + 4 <= nOut; o += 4) {
          const r0 = o * nIn, r1 = r0 + nIn, r2 = r1 + nIn, r3 = r2 + nIn;
          let a0 = b[o], a1 = b[o + 1], a2 = b[o + 2], a3 = b[o + 3];
          for (let i = 0; i < nIn; i++) {
            const u = x[x0 + i];
            a0 += u * w[r0 + i]; a1 += u * w[r1 + i]; a2 += u * w[r2 + i]; a3 += u * w[r3 + i];
          }
          out[o0 + o] = a0; out[o0 + o + 1] = a1; out[o0 + o + 2] = a2; out[o0 + o + 3] = a3;
        }
        for (; o < nOut; o++) {
          const r = o * nIn;
          let a = b[o];
          for (let i = 0; i < nIn; i++) a += x[x0 + i] * w[r + i];
          out[o0 + o] = a;
        }
      }
      return out;
    },
  };
}

// the valid taps of every output pixel of a convolution: [start[p], start[p + 1]) index tx (the input pixel's
// offset, pix * Cin) and tw (the tap's first weight, (ky * kw + kx) * Cout * Cin)
function convTapList(L, taps) {
  const ci = L.in_shape[0], [co, oh, ow] = L.out_shape, [kh, kw] = L.kernel;
  const P = oh * ow, start = new Int32Array(P + 1), tx = [], tw = [];
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let ky = 0; ky < kh; ky++) {
        for (let kx = 0; kx < kw; kx++) {
          const pix = taps(oy, ox, ky, kx);
          if (pix >= 0) { tx.push(pix * ci); tw.push((ky * kw + kx) * co * ci); }
        }
      }
      start[oy * ow + ox + 1] = tx.length;
    }
  }
  return { P, start, tx, tw };
}

// A convolution (plain or transposed) as a gather over channels-last activations.
// taps(oy, ox, ky, kx) -> the input pixel (iy * w + ix) that kernel tap (ky, kx) reads for output (oy, ox), or -1;
// wAt(c, k, ky, kx) -> the index of that weight in torch's layout.
function gatherConvStep(L, chunk, taps, wAt) {
  const [ci, h, wd] = L.in_shape, [co, oh, ow] = L.out_shape, [kh, kw] = L.kernel;
  const raw = floats(L.weight, ci * co * kh * kw), b = floats(L.bias, co) || new Float32Array(co);
  // weights -> (kh, kw, Cout, Cin): for one tap and a block of output channels, contiguous runs over the input channels
  const w = new Float32Array(raw.length);
  for (let ky = 0; ky < kh; ky++)
    for (let kx = 0; kx < kw; kx++)
      for (let c = 0; c < co; c++)
        for (let k = 0; k < ci; k++) w[(((ky * kw + kx) * co + c) * ci) + k] = raw[wAt(c, k, ky, kx)];
  const { P, start, tx, tw } = convTapList(L, taps);
  const tapX = Int32Array.from(tx), tapW = Int32Array.from(tw);
  // pixels with the same taps (of a strided convolution: the same parity, away from the border) go in pairs:
  // one weight load then serves both pixels
  const groups = new Map();
  for (let p = 0; p < P; p++) {
    const key = tw.slice(start[p], start[p + 1]).join();
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(p);
  }
  const pairList = [], singleList = [];
  for (const ps of groups.values()) {
    for (let i = 0; i + 1 < ps.length; i += 2) pairList.push(ps[i], ps[i + 1]);
    if (ps.length % 2) singleList.push(ps[ps.length - 1]);
  }
  const pairs = Int32Array.from(co >= 4 ? pairList : []), singles = Int32Array.from(co >= 4 ? singleList : [...Array(P).keys()]);
  const inSize = ci * h * wd, outSize = co * P, co4 = co - (co % 4), co8 = co - (co % 8), ci4 = ci - (ci % 4);
  const out = new Float32Array(chunk * outSize);
  // one output channel c of one pixel (taps [t0, t1)): 4 partial sums over the input channels
  const one = (x, xb, t0, t1, c) => {
    let s0 = b[c], s1 = 0, s2 = 0, s3 = 0;
    for (let t = t0; t < t1; t++) {
      const xo = xb + tapX[t], w0 = tapW[t] + c * ci;
      let k = 0;
      for (; k < ci4; k += 4) {
        s0 += x[xo + k] * w[w0 + k]; s1 += x[xo + k + 1] * w[w0 + k + 1];
        s2 += x[xo + k + 2] * w[w0 + k + 2]; s3 += x[xo + k + 3] * w[w0 + k + 3];
      }
      for (; k < ci; k++) s0 += x[xo + k] * w[w0 + k];
    }
    return s0 + s1 + s2 + s3;
  };
  return {
    size: outSize,
    run(x, m) {
      for (let j = 0; j < m; j++) {
        const xb = j * inSize, ob = j * outSize;
        for (let i = 0; i < pairs.length; i += 2) {
          // 2 pixels x 4 channels: 8 independent sums (an add waits only for the previous add of its own sum)
          const p = pairs[i], q = pairs[i + 1], t0 = start[p], nt = start[p + 1] - t0, u0 = start[q];
          const op = ob + p * co, oq = ob + q * co;
          for (let c = 0; c < co4; c += 4) {
            let a0 = b[c], a1 = b[c + 1], a2 = b[c + 2], a3 = b[c + 3];
            let e0 = a0, e1 = a1, e2 = a2, e3 = a3;
            for (let t = 0; t < nt; t++) {
              const xp = xb + tapX[t0 + t], xq = xb + tapX[u0 + t];
              const w0 = tapW[t0 + t] + c * ci, w1 = w0 + ci, w2 = w1 + ci, w3 = w2 + ci;
              for (let k = 0; k < ci; k++) {
                const u = x[xp + k], v = x[xq + k];
                const g0 = w[w0 + k], g1 = w[w1 + k], g2 = w[w2 + k], g3 = w[w3 + k];
                a0 += u * g0; a1 += u * g1; a2 += u * g2; a3 += u * g3;
                e0 += v * g0; e1 += v * g1; e2 += v * g2; e3 += v * g3;
              }
            }
            out[op + c] = a0; out[op + c + 1] = a1; out[op + c + 2] = a2; out[op + c + 3] = a3;
            out[oq + c] = e0; out[oq + c + 1] = e1; out[oq + c + 2] = e2; out[oq + c + 3] = e3;
          }
          for (let c = co4; c < co; c++) {
            out[op + c] = one(x, xb, t0, t0 + nt, c);
            out[oq + c] = one(x, xb, u0, u0 + nt, c);
          }
        }
        for (let i = 0; i < singles.length; i++) {
          const p = singles[i], t0 = start[p], t1 = start[p + 1], op = ob + p * co;
          let c = 0;
          for (; c < co8; c += 8) {
            // 8 channels at once: each input value loaded once for all 8, 8 independent sums
            let s0 = b[c], s1 = b[c + 1], s2 = b[c + 2], s3 = b[c + 3];
            let s4 = b[c + 4], s5 = b[c + 5], s6 = b[c + 6], s7 = b[c + 7];
            for (let t = t0; t < t1; t++) {
              const xo = xb + tapX[t], w0 = tapW[t] + c * ci, w1 = w0 + ci, w2 = w1 + ci, w3 = w2 + ci;
              const w4 = w3 + ci, w5 = w4 + ci, w6 = w5 + ci, w7 = w6 + ci;
              for (let k = 0; k < ci; k++) {
                const v = x[xo + k];
                s0 += v * w[w0 + k]; s1 += v * w[w1 + k]; s2 += v * w[w2 + k]; s3 += v * w[w3 + k];
                s4 += v * w[w4 + k]; s5 += v * w[w5 + k]; s6 += v * w[w6 + k]; s7 += v * w[w7 + k];
              }
            }
            out[op + c] = s0; out[op + c + 1] = s1; out[op + c + 2] = s2; out[op + c + 3] = s3;
            out[op + c + 4] = s4; out[op + c + 5] = s5; out[op + c + 6] = s6; out[op + c + 7] = s7;
          }
          for (; c < co; c++) out[op + c] = one(x, xb, t0, t1, c);
        }
      }
      return out;
    },
  };
}

// make: the step built from the geometry (gatherConvStep: plain JS; the WebAssembly compile passes its own)
function conv2dStep(L, chunk, make = gatherConvStep) {
  const [ci, h, wd] = L.in_shape, co = L.out_shape[0], ow = L.out_shape[2];
  const [kh, kw] = L.kernel, [sh, sw] = L.stride, [ph, pw] = L.padding, [dh, dw] = L.dilation;
  return make(L, chunk, (oy, ox, ky, kx) => {
    const iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
    return iy >= 0 && iy < h && ix >= 0 && ix < wd ? iy * wd + ix : -1;
  }, (c, k, ky, kx) => ((c * ci + k) * kh + ky) * kw + kx); // torch: (Cout, Cin, kh, kw)
}

function convTranspose2dStep(L, chunk, make = gatherConvStep) {
  const [ci, h, wd] = L.in_shape, co = L.out_shape[0];
  const [kh, kw] = L.kernel, [sh, sw] = L.stride, [ph, pw] = L.padding, [dh, dw] = L.dilation;
  // torch scatters input (iy, ix) to output (iy * s - p + ky * d, ...): the output gathers from iy = (oy + p - ky * d) / s
  return make(L, chunk, (oy, ox, ky, kx) => {
    const ny = oy + ph - ky * dh, nx = ox + pw - kx * dw;
    if (ny < 0 || nx < 0 || ny % sh !== 0 || nx % sw !== 0) return -1;
    const iy = ny / sh, ix = nx / sw;
    return iy < h && ix < wd ? iy * wd + ix : -1;
  }, (c, k, ky, kx) => ((k * co + c) * kh + ky) * kw + kx); // torch: (Cin, Cout, kh, kw)
}

// (C, H, W) <-> channels-last (H, W, C): out[i] = x[from[i]] per code
function permuteStep(from, chunk) {
  const size = from.length, out = new Float32Array(chunk * size);
  return {
    size,
    run(x, m) {
      for (let j = 0; j < m; j++) {
        const b = j * size;
        for (let i = 0; i < size; i++) out[b + i] = x[b + from[i]];
      }
      return out;
    },
  };
}

function chwToHwc([c, h, w]) {
  const from = new Int32Array(c * h * w);
  for (let p = 0; p < h * w; p++) for (let k = 0; k < c; k++) from[p * c + k] = k * h * w + p;
  return from;
}

function hwcToChw([c, h, w]) {
  const from = new Int32Array(c * h * w);
  for (let k = 0; k < c; k++) for (let p = 0; p < h * w; p++) from[k * h * w + p] = p * c + k;
  return from;
}

// elementwise, in place; one plain loop per kind (no function call per value)
function activationStep(L, size) {
  const slope = L.slope;
  const loops = {
    relu(x, n) { for (let i = 0; i < n; i++) if (x[i] < 0) x[i] = 0; },
    leaky_relu(x, n) { for (let i = 0; i < n; i++) { const v = x[i]; if (v < 0) x[i] = slope * v; } },
    tanh(x, n) { for (let i = 0; i < n; i++) x[i] = Math.tanh(x[i]); },
    sigmoid(x, n) { for (let i = 0; i < n; i++) x[i] = 1 / (1 + Math.exp(-x[i])); },
  };
  const loop = loops[L.op];
  return { size, run(x, m) { loop(x, m * size); return x; } };
}

// ----------------------------------------------------------------------------- the WebAssembly SIMD path
// The same steps with their loops in WebAssembly f32x4 (ui/components/wasm/decoder_kernels.wat): 4-8x faster than
// the plain JS loops in V8 (bench/js_decoder.py). All of a decoder's weights, tap lists and activations live in
// one WebAssembly.Memory of its own; a step's activations are Float32Array views of it, so a kernel is passed
// x.byteOffset, and the JS steps in between (permutations, tanh, sigmoid) run on the same views. Where the engine
// has no SIMD (WebAssembly.validate says no), or a layer has a shape the kernels do not take (a linear layer with
// outputs not a multiple of 4, a convolution with neither channel count a multiple of 4), the whole decoder is
// compiled with the plain JS steps above. The kernels sum in float32 (like torch), the JS steps in doubles:
// the two paths differ by float32 rounding (tests/test_js_decoder.py).

// BEGIN GENERATED by ui/components/wasm/build.sh from decoder_kernels.wat (do not edit; run the script)
const DECODER_WASM_WAT_SHA256 = "b09897d9fb2c6f45afe3b20b2ca1a6af7ac77c92f73a0be68df2472fd6e29dd2";
const DECODER_WASM = "AGFzbQEAAAABKQRgB39/f39/f38AYA1/f39/f39/f39/f39/AGAEf39/fwF/YAN/f30AAg8BA2VudgZtZW1vcnkCAAEDBgUAAQECAwcwBQZsaW5lYXIAAAdjb252X2NvAAEHY29udl9jaQACB25lYXJlc3QAAwVsZWFreQAECvsQBccDAgd/BXsgBkECdCENQQAhBwJAA0AgByAETw0BIAAgByAFbEECdGohCiADIAcgDWxqIQtBACEIAkADQCAIQRBqIAZLDQEgAiAIQQJ0av0ABAAhDyACIAhBAnRq/QAEECEQIAIgCEECdGr9AAQgIREgAiAIQQJ0av0ABDAhEiABIAhBAnRqIQxBACEJAkADQCAJIAVPDQEgCiAJQQJ0aioCAP0TIQ4gDyAOIAz9AAQA/eYB/eQBIQ8gECAOIAz9AAQQ/eYB/eQBIRAgESAOIAz9AAQg/eYB/eQBIREgEiAOIAz9AAQw/eYB/eQBIRIgDCANaiEMIAlBAWohCQwACwsgCyAIQQJ0aiAP/QsEACALIAhBAnRqIBD9CwQQIAsgCEECdGogEf0LBCAgCyAIQQJ0aiAS/QsEMCAIQRBqIQgMAAsLAkADQCAIIAZPDQEgAiAIQQJ0av0ABAAhDyABIAhBAnRqIQxBACEJAkADQCAJIAVPDQEgDyAKIAlBAnRqKgIA/RMgDP0ABAD95gH95AEhDyAMIA1qIQwgCUEBaiEJDAALCyALIAhBAnRqIA/9CwQAIAhBBGohCAwACwsgB0EBaiEHDAALCwvHCAIMfwl7IAlBAnQhF0EAIQ0CQANAIA0gBE8NASAAIA0gBWxqIRMgAyANIAZsaiEUQQAhDgJAA0AgDiAHTw0BQQAhDwJAA0AgD0EgaiAJSw0BIA9BAnQhGCACIBhq/QAEACEaIAIgGGr9AAQQIRsgAiAYav0ABCAhHCACIBhq/QAEMCEdIAIgGGr9AARAIR4gAiAYav0ABFAhHyACIBhq/QAEYCEgIAIgGGr9AARwISEgCiAOQQJ0aigCACEQIAogDkECdGooAgQhEQJAA0AgECARTw0BIBMgCyAQQQJ0aigCAGohFSABIBhqIAwgEEECdGooAgBqIRYgCCESAkADQCASRQ0BIBUqAgD9EyEZIBogGSAW/QAEAP3mAf3kASEaIBsgGSAW/QAEEP3mAf3kASEbIBwgGSAW/QAEIP3mAf3kASEcIB0gGSAW/QAEMP3mAf3kASEdIB4gGSAW/QAEQP3mAf3kASEeIB8gGSAW/QAEUP3mAf3kASEfICAgGSAW/QAEYP3mAf3kASEgICEgGSAW/QAEcP3mAf3kASEhIBVBBGohFSAWIBdqIRYgEkEBayESDAALCyAQQQFqIRAMAAsLIBQgGGogGv0LBAAgFCAYaiAb/QsEECAUIBhqIBz9CwQgIBQgGGogHf0LBDAgFCAYaiAe/QsEQCAUIBhqIB/9CwRQIBQgGGogIP0LBGAgFCAYaiAh/QsEcCAPQSBqIQ8MAAsLAkADQCAPQRBqIAlLDQEgD0ECdCEYIAIgGGr9AAQAIRogAiAYav0ABBAhGyACIBhq/QAEICEcIAIgGGr9AAQwIR0gCiAOQQJ0aigCACEQIAogDkECdGooAgQhEQJAA0AgECARTw0BIBMgCyAQQQJ0aigCAGohFSABIBhqIAwgEEECdGooAgBqIRYgCCESAkADQCASRQ0BIBUqAgD9EyEZIBogGSAW/QAEAP3mAf3kASEaIBsgGSAW/QAEEP3mAf3kASEbIBwgGSAW/QAEIP3mAf3kASEcIB0gGSAW/QAEMP3mAf3kASEdIBVBBGohFSAWIBdqIRYgEkEBayESDAALCyAQQQFqIRAMAAsLIBQgGGogGv0LBAAgFCAYaiAb/QsEECAUIBhqIBz9CwQgIBQgGGogHf0LBDAgD0EQaiEPDAALCwJAA0AgDyAJTw0BIA9BAnQhGCACIBhq/QAEACEaIAogDkECdGooAgAhECAKIA5BAnRqKAIEIRECQANAIBAgEU8NASATIAsgEEECdGooAgBqIRUgASAYaiAMIBBBAnRqKAIAaiEWIAghEgJAA0AgEkUNASAaIBUqAgD9EyAW/QAEAP3mAf3kASEaIBVBBGohFSAWIBdqIRYgEkEBayESDAALCyAQQQFqIRAMAAsLIBQgGGogGv0LBAAgD0EEaiEPDAALCyAUIBdqIRQgDkEBaiEODAALCyANQQFqIQ0MAAsLC8sCAgx/AXsgCEECdCEYQQAhDQJAA0AgDSAETw0BIAAgDSAFbGohFCADIA0gBmxqIRVBACEOAkADQCAOIAdPDQEgCiAOQQJ0aigCACERIAogDkECdGooAgQhEkEAIQ8CQANAIA8gCU8NAf0MAAAAAAAAAAAAAAAAAAAAACEZIBEhEAJAA0AgECASTw0BIBQgCyAQQQJ0aigCAGohFiABIA8gGGxqIAwgEEECdGooAgBqIRdBACETAkADQCATIBhPDQEgGSAWIBNq/QAEACAXIBNq/QAEAP3mAf3kASEZIBNBEGohEwwACwsgEEEBaiEQDAALCyAVIA9BAnRqIAIgD0ECdGoqAgAgGf0fACAZ/R8BkiAZ/R8CIBn9HwOSkpI4AgAgD0EBaiEPDAALCyAVIAlBAnRqIRUgDkEBaiEODAALCyANQQFqIQ0MAAsLC70BAwV/AnsCfSACQQJ0IQdDAACAfyEMQX8hCCAAIQZBACEEAkADQCAEIAFPDQH9DAAAAAAAAAAAAAAAAAAAAAAhCUEAIQUCQANAIAUgB08NASAGIAVq/QAEACADIAVq/QAEAP3lASEKIAkgCiAK/eYB/eQBIQkgBUEQaiEFDAALCyAJ/R8AIAn9HwGSIAn9HwIgCf0fA5KSIQsgCyAMXQRAIAshDCAEIQgLIAYgB2ohBiAEQQFqIQQMAAsLIAgLWwIBfwJ7IAL9EyEFIAAgAUECdGohAwJAA0AgACADTw0BIAD9AAQAIQQgACAEIAUgBP3mASAE/QwAAAAAAAAAAAAAAAAAAAAA/Ub9Uv0LBAAgAEEQaiEADAALCws=";
// END GENERATED

// -> the compiled kernels' WebAssembly.Module, or null where this engine cannot run them (then: plain JS)
function wasmKernels() {
  if (wasmKernels.module !== undefined) return wasmKernels.module;
  wasmKernels.module = null;
  try {
    if (typeof WebAssembly === "object" && LITTLE_ENDIAN && DECODER_WASM) { // wasm memory is little-endian
      const bin = atob(DECODER_WASM);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      // small (< 4 KB): synchronous compilation is allowed on a page's main thread
      if (WebAssembly.validate(bytes)) wasmKernels.module = new WebAssembly.Module(bytes);
    }
  } catch (e) {
    wasmKernels.module = null;
  }
  return wasmKernels.module;
}

// One decoder's memory: alloc() while the steps are built (the memory grows; no view is kept meanwhile, since a
// grow detaches them), finish() instantiates the kernels, then each step's bind() takes its views.
function wasmArena(module) {
  const memory = new WebAssembly.Memory({ initial: 8 });
  let top = 16;
  const A = {
    kernels: null,
    // n 4-byte values, 16-byte aligned -> their byte offset; init (a typed array): copied in now
    alloc(n, init = null) {
      const off = top;
      top += Math.ceil(n / 4) * 16;
      const pages = Math.ceil(top / 65536) - memory.buffer.byteLength / 65536;
      if (pages > 0) memory.grow(pages);
      if (init) new init.constructor(memory.buffer, off, n).set(init);
      return off;
    },
    f32: (off, n) => new Float32Array(memory.buffer, off, n),
    finish() { A.kernels = new WebAssembly.Instance(module, { env: { memory } }).exports; },
  };
  return A;
}

function wasmLinearStep(L, chunk, A) {
  const nIn = L.in, nOut = L.out;
  if (nOut % 4) return null;
  const w = floats(L.weight, nIn * nOut), b = floats(L.bias, nOut) || new Float32Array(nOut);
  const wt = new Float32Array(nIn * nOut); // torch's (nOut, nIn) -> (nIn, nOut): 4 outputs of one input = one vector
  for (let o = 0; o < nOut; o++) for (let i = 0; i < nIn; i++) wt[i * nOut + o] = w[o * nIn + i];
  const wOff = A.alloc(wt.length, wt), bOff = A.alloc(nOut, b), outOff = A.alloc(chunk * nOut);
  let out, k;
  return {
    size: nOut,
    bind() { out = A.f32(outOff, chunk * nOut); k = A.kernels; },
    run(x, m) { k.linear(x.byteOffset, wOff, bOff, outOff, m, nIn, nOut); return out; },
  };
}

// the gather of gatherConvStep, by conv_co (output channels % 4 == 0, weights (kh, kw, Cin, Cout)) or conv_ci
// (input channels % 4 == 0, weights (kh, kw, Cout, Cin))
function wasmConvStep(L, chunk, A, taps, wAt) {
  const [ci, h, wd] = L.in_shape, [co, oh, ow] = L.out_shape, [kh, kw] = L.kernel;
  const byOut = co % 4 === 0;
  if (!byOut && ci % 4) return null;
  const raw = floats(L.weight, ci * co * kh * kw), b = floats(L.bias, co) || new Float32Array(co);
  const w = new Float32Array(raw.length);
  for (let ky = 0; ky < kh; ky++)
    for (let kx = 0; kx < kw; kx++)
      for (let c = 0; c < co; c++)
        for (let k = 0; k < ci; k++) {
          const t = ky * kw + kx;
          w[byOut ? (t * ci + k) * co + c : (t * co + c) * ci + k] = raw[wAt(c, k, ky, kx)];
        }
  const { P, start, tx, tw } = convTapList(L, taps);
  const inSize = ci * h * wd, outSize = co * oh * ow;
  const wOff = A.alloc(w.length, w), bOff = A.alloc(co, b), outOff = A.alloc(chunk * outSize);
  const sOff = A.alloc(P + 1, start);
  const xOff = A.alloc(tx.length, Int32Array.from(tx, (v) => 4 * v)); // offsets in bytes
  const twOff = A.alloc(tw.length, Int32Array.from(tw, (v) => 4 * v));
  let out, kernel;
  return {
    size: outSize,
    bind() { out = A.f32(outOff, chunk * outSize); kernel = byOut ? A.kernels.conv_co : A.kernels.conv_ci; },
    run(x, m) {
      kernel(x.byteOffset, wOff, bOff, outOff, m, 4 * inSize, 4 * outSize, P, ci, co, sOff, xOff, twOff);
      return out;
    },
  };
}

function wasmPermuteStep(from, chunk, A) {
  const size = from.length, outOff = A.alloc(chunk * size);
  let out;
  return {
    size,
    bind() { out = A.f32(outOff, chunk * size); },
    run(x, m) {
      for (let j = 0; j < m; j++) {
        const b = j * size;
        for (let i = 0; i < size; i++) out[b + i] = x[b + from[i]];
      }
      return out;
    },
  };
}

function wasmActivationStep(L, size, A) {
  if (L.op !== "relu" && L.op !== "leaky_relu") return activationStep(L, size); // in place on the views: the JS loop
  const slope = L.op === "relu" ? 0 : L.slope, js = activationStep(L, size);
  let k;
  return {
    size,
    bind() { k = A.kernels; },
    run(x, m) {
      const n = m * size, n4 = n - (n % 4);
      k.leaky(x.byteOffset, n4, slope);
      if (n4 < n) js.run(x.subarray(n4), (n - n4) / size); // never for the shipped decoders (sizes % 4 == 0)
      return x;
    },
  };
}

// the step builders of compile(): plain JS, or the WebAssembly kernels (null: a layer they do not take)
function jsSteps() {
  return {
    kind: "js",
    buffer: (n) => new Float32Array(n),
    linear: (L) => linearStep(L, CHUNK),
    conv2d: (L) => conv2dStep(L, CHUNK),
    conv_transpose2d: (L) => convTranspose2dStep(L, CHUNK),
    permute: (from) => permuteStep(from, CHUNK),
    activation: (L, size) => activationStep(L, size),
    finish: () => {},
  };
}

function wasmSteps(module) {
  const A = wasmArena(module);
  const make = (L, chunk, taps, wAt) => wasmConvStep(L, chunk, A, taps, wAt);
  const bound = [], keep = (step) => { if (step) bound.push(step); return step; };
  const buffers = [];
  return {
    kind: "wasm-simd",
    buffer: (n) => { const off = A.alloc(n); const v = { off, n, view: null }; buffers.push(v); return v; },
    linear: (L) => keep(wasmLinearStep(L, CHUNK, A)),
    conv2d: (L) => keep(conv2dStep(L, CHUNK, make)),
    conv_transpose2d: (L) => keep(convTranspose2dStep(L, CHUNK, make)),
    permute: (from) => keep(wasmPermuteStep(from, CHUNK, A)),
    activation: (L, size) => keep(wasmActivationStep(L, size, A)),
    finish: () => {
      A.finish();
      bound.forEach((s) => s.bind && s.bind());
      buffers.forEach((v) => { v.view = A.f32(v.off, v.n); });
    },
  };
}

class NotForWasm extends Error {}

// spec -> a decoder {decode, decodeMany, kind}; options.wasm === false, or globalThis.__latentLabWasm === false
// (set by a bench or test before the page loads): the plain JS steps even where SIMD runs
function compile(spec, options = {}) {
  const module = options.wasm === false || globalThis.__latentLabWasm === false ? null : wasmKernels();
  if (module) {
    try {
      return compileWith(spec, wasmSteps(module));
    } catch (e) {
      if (!(e instanceof NotForWasm)) throw e;
    }
  }
  return compileWith(spec, jsSteps());
}

function compileWith(spec, S) {
  if (spec.format !== "latent-lab-decoder/1") throw new Error(`unknown decoder format ${spec.format}`);
  const steps = [];
  const add = (step, what) => {
    if (!step) throw new NotForWasm(`no WebAssembly kernel for ${what}`);
    steps.push(step);
  };
  const d = spec.latent_dim;
  let size = d;
  let hwc = null; // [C, H, W] while the activation is held channels-last, null while it is in torch's order
  const toTorchOrder = () => {
    if (hwc && hwc[0] > 1 && hwc[1] * hwc[2] > 1) add(S.permute(hwcToChw(hwc)), "a permutation");
    hwc = null;
  };
  const toChannelsLast = (shape) => {
    if (shape[0] > 1 && shape[1] * shape[2] > 1) add(S.permute(chwToHwc(shape)), "a permutation");
    hwc = shape.slice();
  };
  for (const L of spec.layers) {
    if (L.op === "linear") {
      toTorchOrder();
      if (L.in !== size) throw new Error(`linear expects ${L.in} inputs, gets ${size}`);
      add(S.linear(L), `linear ${L.in} -> ${L.out}`);
    } else if (L.op === "conv2d" || L.op === "conv_transpose2d") {
      if (!L.in_shape || prod(L.in_shape) !== size) throw new Error(`${L.op} expects ${L.in_shape}, gets ${size}`);
      if (!hwc || hwc.join() !== L.in_shape.join()) { toTorchOrder(); toChannelsLast(L.in_shape); }
      add(S[L.op](L), `${L.op} ${L.in_shape} -> ${L.out_shape}`);
      hwc = L.out_shape.slice();
    } else if (L.op === "reshape") {
      if (prod(L.shape) !== size) throw new Error(`cannot reshape ${size} values to ${L.shape}`);
      toTorchOrder(); // a reshape is defined on torch's order
      if (L.shape.length === 3) toChannelsLast(L.shape);
      continue;
    } else if (["relu", "leaky_relu", "tanh", "sigmoid"].includes(L.op)) add(S.activation(L, size), L.op);
    else throw new Error(`unknown layer ${L.op}`);
    size = steps[steps.length - 1].size;
  }
  toTorchOrder();
  if (size !== prod(spec.output_shape)) throw new Error(`decoder ends with ${size} values, not ${spec.output_shape}`);
  const sigmoid = spec.output === "sigmoid";
  const inputBuffer = S.buffer(CHUNK * d);
  S.finish();
  const input = inputBuffer.view || inputBuffer;
  // codes [j0, j0 + m) -> out at j0 * size (the decoder's output, then model.decode's sigmoid)
  const pass = (m, out, at) => {
    let x = input;
    for (const s of steps) x = s.run(x, m);
    const n = m * size;
    if (sigmoid) for (let i = 0; i < n; i++) out[at + i] = 1 / (1 + Math.exp(-x[i]));
    else for (let i = 0; i < n; i++) out[at + i] = x[i];
  };
  return {
    spec,
    kind: S.kind, // "wasm-simd" or "js": which steps run (the tests and the benches read it)
    latentDim: d,
    shape: spec.output_shape,
    // z (d numbers) -> a new Float32Array (*output_shape), what model.decode returns
    decode(z) {
      if (z.length !== d) throw new Error(`expected a code of length ${d}, got ${z.length}`);
      for (let j = 0; j < d; j++) input[j] = z[j];
      const out = new Float32Array(size);
      pass(1, out, 0);
      return out;
    },
    // n codes (one flat array of n * d numbers, or n arrays of d) -> one Float32Array (n, *output_shape)
    decodeMany(codes, n) {
      const rows = n > 0 && typeof codes[0] === "object" && codes[0] !== null;
      if (rows ? codes.length !== n || codes.some((z) => z.length !== d) : codes.length !== n * d)
        throw new Error(`expected ${n} codes of length ${d}`);
      const out = new Float32Array(n * size);
      for (let j0 = 0; j0 < n; j0 += CHUNK) {
        const m = Math.min(CHUNK, n - j0);
        if (rows) for (let j = 0; j < m; j++) input.set(codes[j0 + j], j * d);
        else for (let i = 0; i < m * d; i++) input[i] = codes[j0 * d + i];
        pass(m, out, j0 * size);
      }
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

// The test hooks: window.latentLab.decode / decodeMany(sha256, [[z...], ...]) -> arrays of decoded values (browser decode).
window.latentLab = {
  shas: () => [...LAB.decoders.keys()],
  decode(sha, zs) {
    const dec = LAB.decoders.get(sha);
    if (!dec) throw new Error(`no decoder for ${sha} in this tab`);
    return zs.map((z) => Array.from(dec.decode(z)));
  },
  // the same codes through decodeMany (the grid's batched path) -> arrays of decoded values
  decodeMany(sha, zs) {
    const dec = LAB.decoders.get(sha);
    if (!dec) throw new Error(`no decoder for ${sha} in this tab`);
    const flat = dec.decodeMany(zs, zs.length), size = flat.length / Math.max(zs.length, 1);
    return zs.map((_, i) => Array.from(flat.subarray(i * size, (i + 1) * size)));
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
  // x (C, H, W) in [0, 1] -> the canvas's pixels, like ui.show.to_uint8 (clip, *255, round);
  // x (F,) a feature vector -> a bar chart over the named features (paintBars)
  if (shape.length === 1) { paintBars(canvas, x, canvas.__llChart || chartOf(null, shape[0], 168)); return; }
  const [c, h, w] = shape;
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

// How a vector panel is drawn: the server's chart {features: F names, range: [lo, hi]} (core.webdecoder.vector_chart)
// and the panel's size in CSS pixels. The axis is fixed by the data, so a bar's height means the same in every frame.
function chartOf(chart, n, width) {
  const features = chart && chart.features && chart.features.length === n ? chart.features
    : Array.from({ length: n }, (_, i) => `f${i}`);
  const range = chart && chart.range ? chart.range : [-3, 3];
  const named = (width - 44) / n >= 11; // room for each feature's name under its bar (11 CSS px a bar)
  const plot = Math.round(Math.max(100, Math.min(180, width * 0.5)));
  return { features, range, named, cssWidth: width, cssHeight: plot + (named ? 64 : 0) };
}

const BAR_UP = "#1f77b4", BAR_DOWN = "#d62728"; // above / below the data's mean (0 for standardised features)

function paintBars(canvas, x, chart) {
  // x (F,) -> one bar per feature from 0 to x_i on the axis [lo, hi]; a value beyond the axis is drawn to its edge
  // with a notch. Every rectangle lies on whole device pixels (no anti-aliasing), and the geometry painted is kept
  // on canvas.__llBars ({name, value, x, y, w, h} in canvas pixels) for the hover readout and the tests.
  const dpr = Math.max(1, Math.round(window.devicePixelRatio || 1));
  const W = chart.cssWidth * dpr, H = chart.cssHeight * dpr;
  if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, W, H);
  const text = getComputedStyle(canvas).color || "#888";
  const n = x.length, [lo, hi] = chart.range;
  const font = 10 * dpr, left = Math.round(4.2 * font), right = 2 * dpr, top = Math.round(0.7 * font);
  const slot = (W - left - right) / n;
  const named = chart.named;
  const bottom = Math.round((named ? 6.4 : 0.7) * font);
  const plotH = H - top - bottom;
  const yOf = (v) => top + Math.round(((hi - Math.min(hi, Math.max(lo, v))) / (hi - lo)) * plotH);
  const y0 = yOf(0);
  // the axis: lo, 0 and hi on the left, a zero line across
  ctx.fillStyle = text;
  ctx.font = `${font}px sans-serif`;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const tick = (v) => ctx.fillText((v > 0 ? "+" : "") + (Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(1)), left - 3 * dpr, yOf(v));
  tick(hi); tick(lo);
  if (y0 - yOf(hi) > font && yOf(lo) - y0 > font) tick(0);
  ctx.globalAlpha = 0.35;
  ctx.fillRect(left, y0, W - left - right, Math.max(1, Math.round(dpr / 2)));
  ctx.fillRect(left - dpr, top, dpr, plotH);
  ctx.globalAlpha = 1;
  const bars = [];
  const bw = Math.max(1, Math.floor(slot * 0.8));
  for (let i = 0; i < n; i++) {
    const v = x[i], bx = left + Math.floor(i * slot + (slot - bw) / 2), y1 = yOf(v);
    const y = Math.min(y0, y1), h = Math.max(1, Math.abs(y1 - y0));
    ctx.fillStyle = v >= 0 ? BAR_UP : BAR_DOWN;
    ctx.fillRect(bx, y, bw, h);
    if (v > hi || v < lo) { ctx.fillStyle = text; ctx.fillRect(bx, v > hi ? top : top + plotH - dpr, bw, dpr); }
    bars.push({ name: chart.features[i], value: v, x: bx, y, w: bw, h });
  }
  if (named) {
    ctx.fillStyle = text;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const room = Math.floor(bottom / (0.6 * font));
    chart.features.forEach((name, i) => {
      ctx.save();
      ctx.translate(left + (i + 0.5) * slot, top + plotH + 3 * dpr);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(name.length > room ? name.slice(0, room - 1) + "…" : name, 0, 0);
      ctx.restore();
    });
  }
  canvas.__llBars = bars;
  canvas.__llAxis = { range: [lo, hi], top, plotH, zero: y0 }; // y of v: top + round((hi - v) / (hi - lo) * plotH)
  canvas.setAttribute("data-bars", String(n));
}

function barAt(canvas, clientX) {
  // the bar under the mouse (hover readout: "feature: value")
  const bars = canvas.__llBars;
  if (!bars || !bars.length) return null;
  const r = canvas.getBoundingClientRect(), px = ((clientX - r.left) / r.width) * canvas.width;
  let best = null;
  for (const b of bars) if (px >= b.x - 1 && (!best || b.x <= px)) best = b;
  return best;
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
  const vector = data.shape.length === 1;
  view.panels = data.panels.map((p) => {
    const fig = el("figure", { class: "ll-panel" }, panels);
    const title = el("div", { class: "ll-panel-title" }, fig);
    const canvas = el("canvas", {
      class: vector ? "ll-canvas ll-chart" : "ll-canvas", "data-kind": p.kind,
      style: vector ? `width: ${data.width}px; background: transparent` : `width: ${data.width}px`,
    }, fig);
    if (vector) {
      // a feature vector is a bar chart (paintBars); hovering a bar names its feature and value
      canvas.__llChart = chartOf(data.chart, data.shape[0], data.width);
      canvas.addEventListener("mousemove", (e) => {
        const b = barAt(canvas, e.clientX);
        canvas.title = b ? `${b.name}: ${b.value.toFixed(2)}` : "";
      });
    }
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
    data.panels.map((p) => p.kind), data.width, data.shape, data.slider_columns, data.chart || null]);
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
