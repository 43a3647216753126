"""App latency on CPU: start-up, slider -> decoded image, PCA / UMAP maps of 5,000 points, cached re-view.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/app_latency.py [--skip-umap-cold]

- start_s: `streamlit run app.py` until the home page has rendered in headless Chromium (falls back
  to "health endpoint up + index served" when Chromium/Playwright are missing; the line says which);
- slider_ms: median server-side AppTest rerun after moving the interpolation lambda slider
  (the whole page reruns in AppTest; in a browser only the slider fragment does), beside the
  time of the decode itself inside the fragment;
- pca_s / umap_cold_s / umap_warm_s / cached_s: maps of the 5,000 MNIST-5k latents of the shipped
  aae-uniform-z16 checkpoint (random latents if it is missing); cold = a fresh process, including
  `import umap` and numba's JIT; warm = the second fit in that process; cached = project_cached re-read.
Goals (issue 3): start < 3 s, slider < 150 ms, UMAP warm < 5 s, cached < 0.5 s, cold far below ~50 s.
The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--enable-unsafe-swiftshader"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_start(env: dict) -> tuple[float, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
           str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    use_browser = Path(CHROMIUM).exists()
    pw = browser = None
    if use_browser:  # launch the browser first so its start-up is not counted
        try:
            from playwright.sync_api import sync_playwright

            pw = sync_playwright().start()
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page()
        except Exception as e:  # noqa: BLE001 - fall back to the health check
            print(f"# browser unavailable ({e}); measuring the health endpoint")
            use_browser = False
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
            if time.perf_counter() - t0 > 60:
                raise TimeoutError("streamlit did not start within 60 s")
        health = time.perf_counter() - t0
        if not use_browser:
            urllib.request.urlopen(url + "/", timeout=5).read()
            return time.perf_counter() - t0, f"health+index (health {health:.2f} s)"
        page.goto(url + "/", wait_until="domcontentloaded")
        page.get_by_text("Pages").first.wait_for(timeout=60_000)  # the home page's own content
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000)
        return time.perf_counter() - t0, f"home rendered in Chromium (health after {health:.2f} s)"
    finally:
        proc.terminate()
        proc.wait(10)
        if browser:
            browser.close()
            pw.stop()


def bench_slider(ckpt_root: str | None, n_moves: int = 12) -> tuple[float, float]:
    from streamlit.testing.v1 import AppTest

    if ckpt_root:
        os.environ["LATENT_LAB_CHECKPOINTS"] = ckpt_root
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("app_pages/interpolation.py").run()
    slider = lambda: next(s for s in at.slider if s.key == "w_lam")  # noqa: E731
    rerun, frame = [], []
    for i in range(n_moves):
        value = round(-0.5 + 0.15 * (i + 1), 2)
        t0 = time.perf_counter()
        slider().set_value(value).run()
        rerun.append((time.perf_counter() - t0) * 1e3)
        frame.append(at.session_state["_ll_last_frame_ms"])
        if at.exception:
            raise RuntimeError(at.exception[0].value)
    return statistics.median(rerun[2:]), statistics.median(frame[2:])


def latents_5k() -> tuple[str, object]:
    import numpy as np

    names = ("mnist5k-aae-uniform-z16", "mnist5k-aae-gaussian-z16", "mnist5k-vae-z16", "mnist5k-ae-z16")
    path = next((ROOT / "checkpoints" / n for n in names if (ROOT / "checkpoints" / n / "model.safetensors").is_file()),
                None)
    if path is not None:
        from core.checkpoints import load_checkpoint
        from core.data import load_dataset
        from core.latent import encode_dataset

        z = encode_dataset(load_checkpoint(path, device="cpu").model, load_dataset("mnist5k").x).numpy()
        return f"{path.name} latents", z
    return "random 5000 x 16 latents (shipped checkpoint missing)", np.random.default_rng(0).standard_normal(
        (5000, 16)).astype(np.float32)


UMAP_CHILD = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from core.projection import project, project_cached
z = np.load(sys.argv[1])
project(z, "umap")
cold = time.perf_counter() - t0
t1 = time.perf_counter()
project(z, "umap", seed=1)
warm = time.perf_counter() - t1
project_cached(z, "bench", "umap", sys.argv[2])
t2 = time.perf_counter()
project_cached(z, "bench", "umap", sys.argv[2])
cached = time.perf_counter() - t2
print(json.dumps({"cold": cold, "warm": warm, "cached": cached}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-umap-cold", action="store_true", help="skip the fresh-process UMAP (about a minute)")
    ap.add_argument("--empty-numba-cache", action="store_true",
                    help="give the fresh process an empty NUMBA_CACHE_DIR: the very first run on a machine")
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               MKL_NUM_THREADS=os.environ.get("MKL_NUM_THREADS", "1"))

    from app_support import shipped_root, train_stand_ins

    tmp = Path(tempfile.mkdtemp(prefix="latent-lab-bench-"))
    ckpt_root = None
    if shipped_root() is None:
        print("# shipped checkpoints missing: training small stand-ins")
        ckpt_root = str(train_stand_ins(tmp / "ckpts"))
        env["LATENT_LAB_CHECKPOINTS"] = ckpt_root
    env["LATENT_LAB_RUNS"] = str(tmp / "runs")
    os.environ["LATENT_LAB_RUNS"] = env["LATENT_LAB_RUNS"]
    os.environ["LATENT_LAB_WARM_UMAP"] = "0"

    start_s, how = bench_start(env)
    print(f"start: {start_s:.2f} s ({how})")
    slider_ms, frame_ms = bench_slider(ckpt_root)
    print(f"slider: AppTest rerun median {slider_ms:.0f} ms; decode+mixup+label inside the fragment {frame_ms:.1f} ms")

    import numpy as np

    from core.projection import project, project_cached

    what, z = latents_5k()
    t0 = time.perf_counter()
    project(z, "pca")
    pca_s = time.perf_counter() - t0
    print(f"pca: {pca_s * 1e3:.1f} ms on {what}")

    cold = warm = cached = float("nan")
    np.save(tmp / "z.npy", z)
    if args.empty_numba_cache:
        env["NUMBA_CACHE_DIR"] = str(tmp / "numba")
    if not args.skip_umap_cold:
        r = subprocess.run([sys.executable, "-c", UMAP_CHILD, str(tmp / "z.npy"), str(tmp / "proj")], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print(r.stderr[-2000:])
            raise SystemExit("UMAP child process failed")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        cold, warm, cached = res["cold"], res["warm"], res["cached"]
        numba = "an empty" if args.empty_numba_cache else "the persistent"
        print(f"umap: cold {cold:.1f} s (fresh process with {numba} numba cache, incl. import + JIT), "
              f"warm {warm:.1f} s, cached {cached:.3f} s")
    else:
        project_cached(z, "bench", "pca", tmp / "proj")
        t0 = time.perf_counter()
        project_cached(z, "bench", "pca", tmp / "proj")
        cached = time.perf_counter() - t0
    print(f"app_latency start_s={start_s:.2f} slider_ms={slider_ms:.0f} pca_s={pca_s:.4f} "
          f"umap_cold_s={cold:.1f} umap_warm_s={warm:.1f} cached_s={cached:.3f}")


if __name__ == "__main__":
    main()
