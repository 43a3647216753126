"""The browser decoder's own speed: old vs new ui/components/latent_decoder.js in one run, on a real decoder spec.

    flock /tmp/ll-bench.lock env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/js_decoder.py

- the spec: core.webdecoder.decoder_spec of a shipped checkpoint (default the z = 16 conv AAE, the slowest one);
- "old" = latent_decoder.js at --old (a git revision, default the merge base with main), "new" = the working
  tree's file; only the library part (before `export default function`) is run, in node (the same V8 engine as
  Chromium, without a page: no painting, no Streamlit), each in its own vm context;
- "new" runs twice: its default path (the WebAssembly SIMD kernels where the engine runs them) and its plain JS
  steps (compile(spec, {wasm: false}), the fallback), so their ratio comes from one run on one machine state;
- per decoder: N single decodes (decode(z), what a probe does) and, where the file has it, decodeMany of the
  same N codes (what the grid does), each timed --repeats times, the best repeat reported (the box is shared);
- the decodes are checked against each other and against torch (max |difference|), so a faster but wrong
  decoder shows here too.
The last line is machine-readable. Node, not Chromium: the same JIT, and it starts in a second.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
JS = "ui/components/latent_decoder.js"
LIBRARY_END = "\nexport default function"

# node: load each library in a vm context (its own `window`), decode the same codes, time, compare
RUNNER = r"""
const fs = require("fs"), vm = require("vm");
const [specPath, codesPath, n, repeats, ...libs] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specPath, "utf8"));
const codes = JSON.parse(fs.readFileSync(codesPath, "utf8"));
const d = spec.latent_dim, N = +n, R = +repeats;
const flat = new Float32Array(N * d);
codes.forEach((z, i) => flat.set(z, i * d));
const result = {};
for (const lib of libs) {
  const [name, path, opts] = lib.split("=");  // opts "js": compile(spec, {wasm: false}), the plain JS steps
  const ctx = { atob, performance, console };
  ctx.window = ctx;
  vm.createContext(ctx);
  vm.runInContext(fs.readFileSync(path, "utf8") + "\n;globalThis.__compile = compile;", ctx);
  const dec = opts === "js" ? ctx.__compile(spec, { wasm: false }) : ctx.__compile(spec);
  const r = { single_ms: Infinity, many_ms: null, kind: dec.kind || "js" };
  let outs = null;
  for (let rep = 0; rep < R; rep++) {
    const t0 = performance.now();
    const o = [];
    for (let i = 0; i < N; i++) o.push(dec.decode(codes[i]));
    r.single_ms = Math.min(r.single_ms, (performance.now() - t0) / N);
    outs = o;
  }
  if (typeof dec.decodeMany === "function") {
    r.many_ms = Infinity;
    for (let rep = 0; rep < R; rep++) {
      const t0 = performance.now();
      const o = dec.decodeMany(flat, N);
      r.many_ms = Math.min(r.many_ms, (performance.now() - t0) / N);
      const size = o.length / N;
      let diff = 0;
      for (let i = 0; i < N; i++) for (let j = 0; j < size; j++) diff = Math.max(diff, Math.abs(o[i * size + j] - outs[i][j]));
      r.many_vs_single = diff;
    }
  }
  r.out = outs.map((x) => Array.from(x));
  result[name] = r;
}
process.stdout.write(JSON.stringify(result));
"""


def library(source: str) -> str:
    if LIBRARY_END not in source:
        raise SystemExit(f"{JS} has no `export default function` component")
    return source.split(LIBRARY_END)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default="mnist5k-aae-uniform-z16", help="a shipped checkpoint (a folder of checkpoints/)")
    ap.add_argument("--old", default=None, help="git revision of the old decoder (default: merge-base with main)")
    ap.add_argument("-n", type=int, default=64, help="codes decoded per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is needed (apt-get install nodejs)")
    import torch

    from core.checkpoints import load_checkpoint
    from core.webdecoder import decoder_spec

    old_rev = args.old or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True,
                                         text=True, check=True).stdout.strip()
    old_src = subprocess.run(["git", "show", f"{old_rev}:{JS}"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    model = load_checkpoint(ROOT / "checkpoints" / args.ckpt, device="cpu").model.eval()
    spec = decoder_spec(model)
    codes = torch.randn(args.n, model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model.decode(codes).numpy().reshape(args.n, -1)
    with tempfile.TemporaryDirectory(prefix="latent-lab-jsdec-") as tmp:
        t = Path(tmp)
        (t / "spec.json").write_text(json.dumps(spec))
        (t / "codes.json").write_text(json.dumps(codes.tolist()))
        (t / "old.js").write_text(library(old_src))
        (t / "new.js").write_text(library((ROOT / JS).read_text(encoding="utf-8")))
        (t / "run.js").write_text(RUNNER)
        t0 = time.perf_counter()
        out = subprocess.run([node, str(t / "run.js"), str(t / "spec.json"), str(t / "codes.json"), str(args.n),
                              str(args.repeats), f"old={t / 'old.js'}", f"js={t / 'new.js'}=js",
                              f"new={t / 'new.js'}"], capture_output=True, text=True, check=True).stdout
        wall = time.perf_counter() - t0
    res = json.loads(out)
    old, js, new = res["old"], res["js"], res["new"]
    diff = {k: float(np.abs(np.asarray(v["out"], dtype=np.float64) - want).max()) for k, v in res.items()}
    new_vs_js = float(np.abs(np.asarray(new["out"], dtype=np.float64) - np.asarray(js["out"], dtype=np.float64)).max())
    load = Path("/proc/loadavg").read_text().split()[0]
    node_v = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {args.ckpt}: {len(spec['layers'])} layers; node {node_v}; {args.n} codes x best of {args.repeats}; "
          f"load average {load}; run {wall:.1f} s")

    def line(name: str, r: dict) -> str:
        return (f"{name}: decode {r['single_ms']:.3f} ms"
                + (f", decodeMany {r['many_ms']:.3f} ms a code (max |many - single| {r['many_vs_single']:.1e})"
                   if r["many_ms"] is not None else "") + f"; max |{r.get('kind', 'js')} - torch| ")

    print(line(f"old ({old_rev[:10]})", old) + f"{diff['old']:.2e}")
    print(line("new, plain JS steps", js) + f"{diff['js']:.2e}")
    print(line(f"new, default ({new['kind']})", new) + f"{diff['new']:.2e}; max |{new['kind']} - js| {new_vs_js:.1e}")
    many = new["many_ms"] if new["many_ms"] is not None else new["single_ms"]
    js_many = js["many_ms"] if js["many_ms"] is not None else js["single_ms"]
    print(f"speed-up of the default path: decode x{js['single_ms'] / new['single_ms']:.2f} and decodeMany "
          f"x{js_many / many:.2f} over the plain JS steps (same run); "
          f"decode x{old['single_ms'] / new['single_ms']:.2f} over old")
    print(f"js_decoder ckpt={args.ckpt} n={args.n} kind={new['kind']} old_ms={old['single_ms']:.3f} "
          f"js_ms={js['single_ms']:.3f} js_many_ms={js_many:.3f} new_ms={new['single_ms']:.3f} new_many_ms={many:.3f} "
          f"ratio_vs_js={js['single_ms'] / new['single_ms']:.2f} ratio_many_vs_js={js_many / many:.2f} "
          f"ratio_vs_old={old['single_ms'] / new['single_ms']:.2f} new_vs_js={new_vs_js:.1e} "
          f"old_diff={diff['old']:.1e} js_diff={diff['js']:.1e} new_diff={diff['new']:.1e}")

if __name__ == "__main__":
    main()
