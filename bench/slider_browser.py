"""Slider move -> new image painted, in headless Chromium against `streamlit run`: in-browser decoding vs
the server-rerun path (the reference, same run), and the server's CPU time per move.

    flock /tmp/ll-bench.lock env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/slider_browser.py

Both paths on the Interpolation page, same checkpoint, same pair, lambda from -0.5 upwards in steps of 0.05:
- browser: the components-v2 decoder (ui/components/latent_decoder.*); reference: `?decode=server`, where every
  move is a websocket round trip and a rerun of the slider fragment;
- latency of one move = from the keydown (an ArrowRight on the focused slider; timestamp taken in the page by a
  capture listener) to the first animation frame after the new image is on the page (canvas painted, or the
  server's <img> loaded), both on the page's performance.now() clock; p50/p90 over --moves moves;
- drag latency (browser path only): from each pointermove of a mouse drag to the frame that shows its decode;
- server CPU per move: utime + stime of the streamlit process (/proc/<pid>/stat) across --moves moves
  (browser: one mouse drag before the button is released; reference: the key presses), minus the same
  wall time idle.
Goals (issue 9): browser p50 <= 50 ms (the server path measured 181 ms), server CPU per move ~0.
The last line is machine-readable.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
CHROMIUM = os.environ.get("LATENT_LAB_CHROMIUM", "/usr/bin/chromium")
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"

# In-page probes: keydown/pointermove timestamps, and "when is the next image on screen".
PROBE = """
() => {
  if (window.__llBench) return;
  const B = (window.__llBench = { keys: [], moves: [] });
  document.addEventListener("keydown", () => B.keys.push(performance.now()), true);
  document.addEventListener("pointermove", (e) => { if (e.buttons) B.moves.push(performance.now()); }, true);
}
"""
SERVER_IMAGE = """
() => {  // the decoded LSI sample: the first image of the slider fragment (its caption starts with the lambda)
  const imgs = [...document.querySelectorAll("[data-testid='stImage'] img, [data-testid='stImageContainer'] img, img")];
  return imgs.find((i) => (i.closest("[data-testid='stImage'], [data-testid='stElementContainer']")?.innerText || "")
                          .startsWith("λ = ")) || null;
}
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _pct(xs: list[float], q: float) -> float:
    return float(statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1]) if len(xs) > 1 else xs[0]


def _settle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=120_000)
    page.wait_for_timeout(500)


def _idle_cpu(pid: int, seconds: float) -> float:
    c0 = _cpu_seconds(pid)
    time.sleep(seconds)
    return _cpu_seconds(pid) - c0


def browser_path(page, url: str, n: int, pid: int) -> dict:
    page.goto(url + "&lam=-0.5", wait_until="domcontentloaded")
    page.wait_for_selector(".ll-root .ll-sliders", timeout=120_000)
    _settle(page)
    page.evaluate(PROBE)
    slider = page.locator("[data-testid='llDecoderSlider']").first
    slider.focus()
    lat = []
    for _ in range(n):
        k0 = page.evaluate("window.__llBench.keys.length")
        p0 = page.evaluate("window.latentLab.paints().length")
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"window.latentLab.paints().length > {p0} && window.__llBench.keys.length > {k0}")
        t_key = page.evaluate(f"window.__llBench.keys[{k0}]")
        t_paint = page.evaluate(f"window.latentLab.paints()[{p0}].t")
        lat.append(t_paint - t_key)
        page.wait_for_timeout(60)  # keys keep moving: the value goes to the server once they rest (0.4 s)
    _settle(page)

    # a mouse drag of n moves, button held: latency per pointermove and the server's CPU meanwhile
    page.goto(url + "&lam=-0.5", wait_until="domcontentloaded")
    page.wait_for_selector(".ll-root .ll-sliders", timeout=120_000)
    _settle(page)
    page.evaluate(PROBE)
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    x0 = box["x"] + 8
    page.mouse.move(x0, y)
    page.wait_for_timeout(300)
    page.mouse.down()
    page.wait_for_timeout(300)
    m0 = page.evaluate("window.__llBench.moves.length")
    p0 = page.evaluate("window.latentLab.paints().length")
    c0, w0 = _cpu_seconds(pid), time.perf_counter()
    for i in range(1, n + 1):
        page.mouse.move(x0 + (box["width"] - 16) * i / n, y)
        page.wait_for_timeout(30)
    page.wait_for_timeout(200)
    cpu, wall = _cpu_seconds(pid) - c0, time.perf_counter() - w0
    moves = page.evaluate(f"window.__llBench.moves.slice({m0})")
    paints = [p["t"] for p in page.evaluate(f"window.latentLab.paints().slice({p0})")]
    page.mouse.up()
    _settle(page)
    # each move's latency: the first paint at or after it (paints coalesce moves within one frame)
    drag = [next(p for p in paints if p >= m) - m for m in moves if any(p >= m for p in paints)]
    decode_ms = [p["decodeMs"] for p in page.evaluate("window.latentLab.paints()")]
    return {"lat": lat, "drag": drag, "cpu": cpu, "wall": wall, "moves": len(moves), "paints": len(paints),
            "decode_ms": statistics.median(decode_ms)}


def server_path(page, url: str, n: int, pid: int) -> dict:
    page.goto(url + "&lam=-0.5&decode=server", wait_until="domcontentloaded")
    page.get_by_text("λ = -0.50").first.wait_for(timeout=120_000)
    _settle(page)
    page.evaluate(PROBE)
    thumb = page.locator("[data-testid='stSlider'] input[type='range']").first
    thumb.focus()
    lat = []
    c0, w0 = _cpu_seconds(pid), time.perf_counter()
    for i in range(n):
        prev = page.evaluate(f"(() => {{ const img = ({SERVER_IMAGE})(); return img && img.src; }})()")
        k0 = page.evaluate("window.__llBench.keys.length")
        page.keyboard.press("ArrowRight")
        want = f"λ = {-0.5 + 0.05 * (i + 1):.2f}"
        t_paint = page.evaluate(
            """async ([prev, want, find]) => {
              const get = eval(find);
              for (;;) {
                const img = get();
                const cap = img && (img.closest("[data-testid='stImage'], [data-testid='stElementContainer']")
                                    ?.innerText || "");
                if (img && img.src !== prev && cap.startsWith(want) && img.complete && img.naturalWidth > 0) break;
                await new Promise((r) => requestAnimationFrame(r));
              }
              return await new Promise((r) => requestAnimationFrame(() => r(performance.now())));
            }""", [prev, want, SERVER_IMAGE])
        lat.append(t_paint - page.evaluate(f"window.__llBench.keys[{k0}]"))
        page.wait_for_selector(IDLE, timeout=60_000)
        page.wait_for_timeout(60)
    cpu, wall = _cpu_seconds(pid) - c0, time.perf_counter() - w0
    return {"lat": lat, "cpu": cpu, "wall": wall}


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    try:
        chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        chromium = "?"
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; {chromium}"


@contextmanager
def app_server(env: dict):
    """`streamlit run app.py` on a free loopback port with `env`: yields (its process, its base URL) once it answers
    its health check, and stops it afterwards."""
    from test_browser import _free_port, _wait_healthy

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        yield proc, base
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=30, help="moves per path (>= 30 for the p90)")
    ap.add_argument("--ckpt", default="shipped/mnist5k-aae-uniform-z16", help="checkpoint key")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}: `sudo apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    from app_support import shipped_root, train_stand_ins
    from test_browser import CHROMIUM_ARGS

    tmp = Path(tempfile.mkdtemp(prefix="latent-lab-slider-"))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", LATENT_LAB_RUNS=str(tmp / "runs"),
               LATENT_LAB_WARM_UMAP="0")
    if shipped_root() is None:
        print("# shipped checkpoints missing: training small stand-ins")
        env["LATENT_LAB_CHECKPOINTS"] = str(train_stand_ins(tmp / "ckpts"))
    print(f"# machine: {machine()}")
    with app_server(env) as (proc, base):
        url = f"{base}/interpolation?ckpt={args.ckpt}&i0=500&i1=3500"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # warm both paths once (first decode JIT, first rerun's caches), then measure
            server_path(page, url, 3, proc.pid)
            browser_path(page, url, 3, proc.pid)
            srv = server_path(page, url, args.moves, proc.pid)
            web = browser_path(page, url, args.moves, proc.pid)
            browser.close()
        idle = _idle_cpu(proc.pid, web["wall"])

    n = args.moves
    b50, b90, s50, s90 = _pct(web["lat"], 50), _pct(web["lat"], 90), _pct(srv["lat"], 50), _pct(srv["lat"], 90)
    d50, d90 = (_pct(web["drag"], 50), _pct(web["drag"], 90)) if web["drag"] else (float("nan"),) * 2
    web_cpu = max(0.0, web["cpu"] - idle) / max(web["moves"], 1) * 1e3
    srv_cpu = srv["cpu"] / n * 1e3
    print(f"browser decode: key -> painted p50 {b50:.1f} ms, p90 {b90:.1f} ms over {n} moves "
          f"(decode itself {web['decode_ms']:.1f} ms median)")
    print(f"browser decode: drag pointermove -> painted p50 {d50:.1f} ms, p90 {d90:.1f} ms "
          f"({web['moves']} pointer moves, {web['paints']} frames painted)")
    print(f"server decode (reference): key -> painted p50 {s50:.1f} ms, p90 {s90:.1f} ms over {n} moves")
    print(f"server CPU per move: browser drag {web_cpu:.2f} ms ({web['cpu'] * 1e3:.0f} ms in {web['wall']:.1f} s, "
          f"idle {idle * 1e3:.0f} ms in the same time), server path {srv_cpu:.1f} ms")
    print(f"slider_browser moves={n} browser_p50_ms={b50:.1f} browser_p90_ms={b90:.1f} drag_p50_ms={d50:.1f} "
          f"server_p50_ms={s50:.1f} server_p90_ms={s90:.1f} speedup_p50={s50 / b50:.1f} "
          f"browser_cpu_ms_per_move={web_cpu:.2f} server_cpu_ms_per_move={srv_cpu:.1f}")


if __name__ == "__main__":
    main()
