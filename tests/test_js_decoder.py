"""The browser decoder's two paths, run in node (the same V8 as Chromium, no page): ui/components/latent_decoder.js.

- The WebAssembly SIMD kernels embedded in latent_decoder.js are the ones built from the committed
  ui/components/wasm/decoder_kernels.wat (its sha256 is recorded beside the bytes by build.sh).
- For every shipped checkpoint the default path is the WebAssembly one, and its decode equals the plain JS path's
  (<= 1e-5: float32 vs double sums) and torch's; decodeMany (the grid) equals decode (the probe) exactly.
- A decoder whose layers exercise every kernel branch (32 / 16 / 4 output channels, the input-channel kernel,
  conv2d, ReLU, tanh) runs on the kernels and matches torch; one the kernels do not take (a linear layer with 50
  outputs) and an engine without SIMD (WebAssembly.validate says no) fall back to the JS path, still matching torch.
Skipped where node is missing (the browser tests cover the page itself).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from app_support import shipped_root
from core.webdecoder import decoder_spec

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "ui" / "components" / "latent_decoder.js"
WAT = ROOT / "ui" / "components" / "wasm" / "decoder_kernels.wat"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

# load the library part in a vm context, compile the spec both ways, decode the codes with decode and decodeMany
RUNNER = r"""
const fs = require("fs"), vm = require("vm");
const [libPath, specPath, codesPath, noSimd] = process.argv.slice(2);
const ctx = { atob, console };
ctx.window = ctx;
vm.createContext(ctx);
// an engine without SIMD: WebAssembly.validate says no to the kernels
if (noSimd === "1") vm.runInContext("WebAssembly.validate = () => false;", ctx);
vm.runInContext(fs.readFileSync(libPath, "utf8") + "\n;globalThis.__compile = compile;", ctx);
const spec = JSON.parse(fs.readFileSync(specPath, "utf8")), codes = JSON.parse(fs.readFileSync(codesPath, "utf8"));
const out = {};
for (const [name, opts] of [["default", {}], ["js", { wasm: false }]]) {
  const dec = ctx.__compile(spec, opts);
  const many = dec.decodeMany(codes, codes.length), size = many.length / codes.length;
  out[name] = { kind: dec.kind, one: codes.map((z) => Array.from(dec.decode(z))),
                many: codes.map((_, i) => Array.from(many.subarray(i * size, (i + 1) * size))) };
}
process.stdout.write(JSON.stringify(out));
"""


def _library() -> str:
    return JS.read_text(encoding="utf-8").split("\nexport default function")[0]


def _run(tmp_path: Path, spec: dict, codes: torch.Tensor, no_simd: bool = False) -> dict:
    (tmp_path / "lib.js").write_text(_library())
    (tmp_path / "run.js").write_text(RUNNER)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "codes.json").write_text(json.dumps(codes.tolist()))
    out = subprocess.run([NODE, str(tmp_path / "run.js"), str(tmp_path / "lib.js"), str(tmp_path / "spec.json"),
                          str(tmp_path / "codes.json"), "1" if no_simd else "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    return {k: {"kind": v["kind"], "one": np.asarray(v["one"]), "many": np.asarray(v["many"])} for k, v in res.items()}


def _torch(decode, codes: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return decode(codes).numpy().reshape(len(codes), -1)


def test_embedded_kernels_are_built_from_the_committed_wat():
    src = JS.read_text(encoding="utf-8")
    sha = re.search(r'const DECODER_WASM_WAT_SHA256 = "([0-9a-f]*)";', src).group(1)
    b64 = re.search(r'const DECODER_WASM = "([A-Za-z0-9+/=]*)";', src).group(1)
    assert sha == hashlib.sha256(WAT.read_bytes()).hexdigest(), \
        "decoder_kernels.wat changed: run ui/components/wasm/build.sh and commit latent_decoder.js"
    wasm = base64.b64decode(b64)
    assert wasm[:4] == b"\0asm"
    assert len(wasm) <= 4096, "Chromium compiles only modules <= 4 KB synchronously on a page's main thread"


def _shipped():
    root = shipped_root()
    return sorted(p for p in root.iterdir() if (p / "model.safetensors").is_file()) if root else []


@needs_node
@pytest.mark.parametrize("path", _shipped(), ids=lambda p: p.name)
def test_shipped_decoders_run_on_the_kernels_and_equal_js_and_torch(tmp_path, path):
    from core.checkpoints import load_checkpoint

    model = load_checkpoint(path, device="cpu").model.eval()
    codes = torch.randn(19, model.latent_dim, generator=torch.Generator().manual_seed(3)) * 1.5  # > 1 chunk of 16
    res = _run(tmp_path, decoder_spec(model), codes)
    wasm, js = res["default"], res["js"]
    assert wasm["kind"] == "wasm-simd" and js["kind"] == "js"
    np.testing.assert_array_equal(wasm["many"], wasm["one"])  # the grid's batches decode what the probe does
    assert np.abs(wasm["one"] - js["one"]).max() <= 1e-5
    assert np.abs(wasm["one"] - _torch(model.decode, codes)).max() <= 1e-4


class _Wrapped(nn.Module):
    def __init__(self, decoder: nn.Module, d: int):
        super().__init__()
        self.decoder, self.latent_dim = decoder, d


@needs_node
def test_every_kernel_branch_matches_torch(tmp_path):
    torch.manual_seed(0)
    dec = nn.Sequential(
        nn.Linear(3, 20), nn.LeakyReLU(0.1),              # 20 outputs: a block of 16, then one of 4
        nn.Linear(20, 4 * 5 * 5), nn.ReLU(), nn.Unflatten(1, (4, 5, 5)),
        nn.Conv2d(4, 52, 3, padding=1), nn.Tanh(),         # 52 output channels: 32 + 16 + 4
        nn.ConvTranspose2d(52, 3, 4, stride=2, padding=1),  # 3 output channels, 52 input: the input-channel kernel
    ).eval()
    codes = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    res = _run(tmp_path, {**decoder_spec(_Wrapped(dec, 3)), "output": "identity"}, codes)
    assert res["default"]["kind"] == "wasm-simd"
    want = _torch(dec, codes)
    for path in ("default", "js"):
        assert np.abs(res[path]["one"] - want).max() <= 1e-5, path
        assert np.abs(res[path]["many"] - want).max() <= 1e-5, path


@needs_node
@pytest.mark.parametrize("no_simd", [False, True], ids=["odd-layer", "no-simd"])
def test_falls_back_to_js_and_still_matches_torch(tmp_path, no_simd):
    torch.manual_seed(0)
    if no_simd:  # a decoder the kernels take (checked below), on an engine that cannot run them
        dec = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Unflatten(1, (4, 2, 2)), nn.Conv2d(4, 4, 3, padding=1),
                            nn.Tanh(), nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1))
    else:  # a linear layer with 50 outputs (and 2 -> 3 channels): no kernel takes it
        dec = nn.Sequential(nn.Linear(2, 50), nn.ReLU(), nn.Unflatten(1, (2, 5, 5)), nn.Conv2d(2, 3, 3, padding=1),
                            nn.Tanh(), nn.ConvTranspose2d(3, 1, 3, stride=2, padding=1, output_padding=1))
    dec.eval()
    spec = {**decoder_spec(_Wrapped(dec, 2)), "output": "identity"}
    codes = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    res = _run(tmp_path, spec, codes, no_simd=no_simd)
    assert res["default"]["kind"] == "js"
    np.testing.assert_array_equal(res["default"]["one"], res["js"]["one"])
    assert np.abs(res["default"]["one"] - _torch(dec, codes)).max() <= 1e-5
    if no_simd:
        assert _run(tmp_path, spec, codes)["default"]["kind"] == "wasm-simd"


NEAREST_RUNNER = r"""
const fs = require("fs"), vm = require("vm");
const [libPath, dataPath] = process.argv.slice(2);
const ctx = { atob, console };
ctx.window = ctx;
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(libPath, "utf8") + "\n;globalThis.__nearest = nearest;\n"
               + "globalThis.__kernel = nearestKernel;", ctx);
const { train, d, queries } = JSON.parse(fs.readFileSync(dataPath, "utf8"));
const t = Float32Array.from(train);
const run = (opts) => queries.map((z) => ctx.__nearest(t, d, 2.0, Float64Array.from(z), opts));
process.stdout.write(JSON.stringify({ kernel: run({}), js: run({ wasm: false }), used: !!ctx.__kernel(t, d) }));
"""


@needs_node
@pytest.mark.parametrize("d", [16, 2])
def test_hole_depth_search_on_the_kernel_equals_the_js_loop_and_numpy(tmp_path, d):
    """The grid's and the probe's nearest training code (latent_probe.js nearest: the kernel for d % 4 == 0)."""
    gen = np.random.default_rng(0)
    train = gen.standard_normal((3000, d)).astype(np.float32)
    queries = np.concatenate([gen.standard_normal((6, d)) * 1.5, train[[17, 2999]].astype(np.float64),
                              np.full((1, d), 40.0)])  # two training codes themselves, one far outside
    lib = _library() + "\n" + (ROOT / "ui" / "components" / "latent_probe.js").read_text(encoding="utf-8").split(
        "\nexport default function")[0]
    (tmp_path / "lib.js").write_text(lib)
    (tmp_path / "run.js").write_text(NEAREST_RUNNER)
    (tmp_path / "data.json").write_text(json.dumps({"train": train.ravel().tolist(), "d": d,
                                                    "queries": queries.tolist()}))
    out = subprocess.run([NODE, str(tmp_path / "run.js"), str(tmp_path / "lib.js"), str(tmp_path / "data.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["used"] == (d % 4 == 0)  # d = 2: the JS loop (the kernel takes d % 4 == 0)
    dist = np.sqrt(((queries[:, None, :] - train[None].astype(np.float64)) ** 2).sum(-1))
    want = dist.argmin(1)
    for name in ("kernel", "js"):
        got = res[name]
        assert [g["index"] for g in got] == want.tolist(), name
        np.testing.assert_allclose([g["distance"] for g in got], dist.min(1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose([g["depth"] for g in got], dist.min(1) / 2.0, rtol=1e-12, atol=1e-12)
    assert res["kernel"][6]["distance"] == 0 and res["kernel"][7]["index"] == 2999
