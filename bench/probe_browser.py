"""Latent map probe in headless Chromium against `streamlit run`: pointer move -> decoded probe painted, the
server's CPU while hovering, and the decoded manifold's draw time (16 x 16 and 24 x 24), with a reference
measured in the same run: the same decodes in torch on this machine's CPU (what the server would spend).

    flock /tmp/ll-bench.lock env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/probe_browser.py

- probe latency = from each pointermove over the map canvas (timestamp taken in the page by a capture
  listener) to the first animation frame after a probe was decoded and painted (ui/components/latent_probe.js
  pushes one entry per painted frame), on the page's performance.now() clock; p50/p90 over --moves moves;
- server CPU while hovering = utime + stime of the streamlit process (/proc/<pid>/stat) during the moves,
  minus the same wall time idle right after (the page's own pollers run in both);
- grid time = data-grid-ms of the map's element: from the start of the grid to its last tile drawn (the tiles
  are decoded a slice per animation frame, so the page stays responsive), the hole comparison's grids off;
  drawn again once the page has settled (the figure), and as first drawn while the page still loads;
- reference: torch decodes of the same number of codes on this CPU, one at a time (a probe) and batched (a grid).
- the grid's time split (page settled), from latent_probe.js's own timers on the page's thread: the map -> code
  inverse, the hole depth (nearest training code), the decode, painting the tiles, redrawing the map, and the
  rest = waiting for animation frames (the tiles come ~50 ms of work per frame) and whatever else ran;
- --js: the decoder's plain JS steps (the fallback where WebAssembly SIMD is missing) instead of the SIMD kernels;
  --workers N: the grid's batches decoded by N Web Workers (by default none on fewer than 4 cores).
Goals (issue 14): probe p50 <= 30 ms on the z = 16 conv decoder, server CPU ~0 while hovering, 16 x 16 <= 300 ms,
24 x 24 <= 1 s. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from slider_browser import CHROMIUM, _cpu_seconds, _idle_cpu, _pct, _settle, app_server, machine  # noqa: E402

MOVES = """
() => {
  if (window.__lpBench) return;
  const B = (window.__lpBench = { moves: [] });
  document.addEventListener("pointermove", () => B.moves.push(performance.now()), true);
}
"""


def _open(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.locator(".lp-root[data-ready='live']").first.wait_for(timeout=180_000)
    _settle(page)


def hover(page, url: str, n: int, pid: int) -> dict:
    _open(page, url)
    page.evaluate(MOVES)
    canvas = page.locator(".lp-root").first.locator("canvas.lp-map").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.wait_for_timeout(300)
    m0 = page.evaluate("window.__lpBench.moves.length")
    p0 = page.evaluate("window.latentLabProbe.paints().length")
    c0, w0 = _cpu_seconds(pid), time.perf_counter()
    for i in range(1, n + 1):  # a diagonal sweep, one move every 50 ms
        page.mouse.move(box["x"] + box["width"] * (0.05 + 0.9 * i / n), box["y"] + box["height"] * (0.9 - 0.8 * i / n))
        page.wait_for_timeout(50)
    page.wait_for_timeout(200)
    cpu, wall = _cpu_seconds(pid) - c0, time.perf_counter() - w0
    moves = page.evaluate(f"window.__lpBench.moves.slice({m0})")
    paints = page.evaluate(f"window.latentLabProbe.paints().slice({p0})")
    times = [p["t"] for p in paints]
    lat = [next(t for t in times if t >= m) - m for m in moves if any(t >= m for t in times)]
    idle = _idle_cpu(pid, wall)
    return {"lat": lat, "cpu": cpu, "idle": idle, "wall": wall, "moves": len(moves), "paints": len(paints),
            "decode_ms": sorted(p["decodeMs"] for p in paints)[len(paints) // 2] if paints else float("nan")}


def grid_ms(page, url: str, n: int) -> tuple[float, float, dict]:
    """(ms while the page loads (its chart, tables and pollers share the browser's main thread), ms of the same
    grid drawn again once the page has settled, where that time went: latent_probe.js's grid timing + kind)."""
    _open(page, f"{url}&grid={n}")
    first = f"() => {{ const g = window.latentLabProbe.grids()[0]; return g && g.n === {n} && g.done; }}"
    page.wait_for_function(first, timeout=180_000)
    loading = float(page.evaluate("() => window.latentLabProbe.grids()[0].ms"))
    root = page.locator(".lp-root").first
    count = int(root.get_attribute("data-grids"))
    page.evaluate("() => window.latentLabProbe.regrid()")
    page.wait_for_function("([el, n]) => +el.getAttribute('data-grids') > n", arg=[root.element_handle(), count],
                           timeout=120_000)
    g = page.evaluate("() => { const g = window.latentLabProbe.grids()[0]; "
                      "return {ms: g.ms, timing: g.timing, kind: g.kind, workers: g.workers}; }")
    return loading, float(g["ms"]), {**(g["timing"] or {}), "kind": g["kind"], "workers": g["workers"]}


def breakdown(ms: float, t: dict) -> str:
    """The grid's ms split: measured parts on the page's thread, the rest = waiting for animation frames (the
    tiles are decoded ~50 ms per frame, then the browser renders) and whatever else ran."""
    parts = ["inverse", "depth", "decode", "tiles", "redraw"]
    rest = ms - sum(t.get(k, 0.0) for k in parts)
    return (", ".join(f"{k} {t.get(k, 0.0):.0f}" for k in parts) + f", frames/other {rest:.0f} ms "
            f"({t.get('frames', 0)} frames; decoder {t.get('kind')}, {t.get('workers', 0)} workers)")


def torch_reference(ckpt_key: str, n_grid: tuple[int, ...]) -> dict:
    """Torch decode times on this CPU (one thread, like the app's workers): one code, and n x n codes batched."""
    import torch

    from app_support import shipped_root
    from core.checkpoints import load_checkpoint

    torch.set_num_threads(1)
    model = load_checkpoint(shipped_root() / ckpt_key.split("/", 1)[1], device="cpu").model.eval()
    d = model.latent_dim
    g = torch.Generator().manual_seed(0)
    out = {}
    with torch.no_grad():
        z = torch.randn(1, d, generator=g)
        model.decode(z)
        ts = []
        for _ in range(30):
            t0 = time.perf_counter()
            model.decode(z)
            ts.append((time.perf_counter() - t0) * 1e3)
        out["one_ms"] = sorted(ts)[len(ts) // 2]
        for n in n_grid:
            z = torch.randn(n * n, d, generator=g)
            t0 = time.perf_counter()
            model.decode(z)
            out[f"grid{n}_ms"] = (time.perf_counter() - t0) * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=40, help="pointer moves (>= 30 for the p90)")
    ap.add_argument("--ckpt", default="shipped/mnist5k-aae-uniform-z16", help="checkpoint key (a z = 16 conv net)")
    ap.add_argument("--workers", type=int, default=None,
                    help="decode the grid's batches in this many Web Workers (default: the page's own rule, none on "
                         "fewer than 4 cores)")
    ap.add_argument("--js", action="store_true",
                    help="decode with the plain JS steps (the fallback where WebAssembly SIMD is missing)")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}: `sudo apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    from app_support import shipped_root
    from test_browser import CHROMIUM_ARGS

    if shipped_root() is None:
        raise SystemExit("the shipped checkpoints are needed (the goals are about their conv decoders)")
    tmp = Path(tempfile.mkdtemp(prefix="latent-lab-probe-"))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", LATENT_LAB_RUNS=str(tmp / "runs"),
               LATENT_LAB_WARM_UMAP="0")
    print(f"# machine: {machine()}; load average before the run: {Path('/proc/loadavg').read_text().split()[0]}")
    with app_server(env) as (proc, base):
        url = f"{base}/latent_map?ckpt={args.ckpt}&hgrid=0"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            if args.js:
                page.add_init_script("globalThis.__latentLabWasm = false;")
            if args.workers is not None:
                page.add_init_script(f"window.__latentLabGridWorkers = {int(args.workers)};")
            hover(page, url, 5, proc.pid)  # warm: the first decode, the first rerun's caches
            web = hover(page, url, args.moves, proc.pid)
            g16, g24 = grid_ms(page, url, 16), grid_ms(page, url, 24)
            browser.close()
        # measured and printed before the server is stopped: on a loaded box its shutdown can outlast app_server's
        # wait, and the figures must not be lost to that (the server idles meanwhile)
        ref = torch_reference(args.ckpt, (16, 24))
        report(args, web, g16, g24, ref)


def report(args, web: dict, g16: tuple, g24: tuple, ref: dict) -> None:
    print(f"# load average after the run: {Path('/proc/loadavg').read_text().split()[0]} (on {os.cpu_count()} cores)")

    p50, p90 = _pct(web["lat"], 50), _pct(web["lat"], 90)
    cpu = max(0.0, web["cpu"] - web["idle"]) * 1e3
    print(f"probe: pointermove -> painted p50 {p50:.1f} ms, p90 {p90:.1f} ms ({web['moves']} moves, "
          f"{web['paints']} frames painted; decode + paint itself {web['decode_ms']:.1f} ms median)")
    print(f"server CPU while hovering: {web['cpu'] * 1e3:.0f} ms in {web['wall']:.1f} s, "
          f"idle {web['idle'] * 1e3:.0f} ms in the same time -> {cpu:.0f} ms for hovering")
    print(f"decoded manifold in the browser, page settled: 16x16 {g16[1]:.0f} ms ({g16[1] / 256:.1f} ms a tile), "
          f"24x24 {g24[1]:.0f} ms ({g24[1] / 576:.1f} ms a tile) "
          f"(while the page loads: {g16[0]:.0f} ms, {g24[0]:.0f} ms)")
    print(f"  16x16 breakdown: {breakdown(g16[1], g16[2])}")
    print(f"  24x24 breakdown: {breakdown(g24[1], g24[2])}")
    print(f"reference (torch on this CPU, 1 thread): one decode {ref['one_ms']:.2f} ms, 16x16 batched "
          f"{ref['grid16_ms']:.0f} ms, 24x24 batched {ref['grid24_ms']:.0f} ms")
    print(f"probe_browser decoder={g16[2].get('kind')} workers={g16[2].get('workers', 0)} moves={web['moves']} "
          f"probe_p50_ms={p50:.1f} probe_p90_ms={p90:.1f} "
          f"hover_server_cpu_ms={cpu:.0f} grid16_ms={g16[1]:.0f} grid24_ms={g24[1]:.0f} "
          f"grid16_loading_ms={g16[0]:.0f} grid24_loading_ms={g24[0]:.0f} torch_one_ms={ref['one_ms']:.2f} "
          f"torch_grid16_ms={ref['grid16_ms']:.0f} torch_grid24_ms={ref['grid24_ms']:.0f}")


if __name__ == "__main__":
    main()
