"""The web server's own CPU time while a user opens the Saliency page and computes a UMAP (issue 13's goal: < 1 s).

    .venv/bin/python bench/server_cpu.py

A real `streamlit run app.py` (fresh runs folder, so nothing is cached) driven by headless Chromium. After the
home page has rendered (start-up, not counted), two visits, each:
  1. the Saliency page: two classifiers train in a worker, the page shows their maps;
  2. the Latent map page (its map, the hole comparison of the z = 2 models), then projection UMAP: a worker
     fits it, the page swaps the PCA map for the UMAP one.
The first visit ("cold") is the first visitor of a fresh server: imports, the workers' start-up and first
loads included. The second ("warm") asks for new results: another saliency seed, another checkpoint's UMAP.
It reads the CPU seconds (user + system, /proc/<pid>/stat) of the server process itself and of its
descendants (the executor's worker processes), and prints both: the worker CPU is the heavy work measured in
the same run, the reference the server's share is read against.
The server's share is what it costs to serve the pages: running the scripts, building the figures and
images, polling the jobs. Needs /usr/bin/chromium and the playwright package. The last line is
machine-readable.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--enable-unsafe-swiftshader"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (its own threads; not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK          # utime, stime (fields 14, 15 of stat)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def workers_cpu(pid: int, seen: dict[int, float]) -> float:
    """CPU seconds of every descendant still alive, remembered per pid so that a worker that exits keeps its
    last reading (sampled while the run goes on)."""
    for c in descendants(pid):
        try:
            seen[c] = cpu_seconds(c)
        except OSError:
            pass
    return sum(seen.values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(page, server_pid: int, seen: dict, cond, what: str, timeout: float = 600) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        workers_cpu(server_pid, seen)
        if cond():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not appear within {timeout:.0f} s")


def main() -> None:
    from playwright.sync_api import sync_playwright

    runs = tempfile.mkdtemp(prefix="ll-server-cpu-")
    env = dict(os.environ, LATENT_LAB_RUNS=runs, LATENT_LAB_WARM_UMAP="0", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    seen: dict[int, float] = {}
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        page.goto(url + "/", wait_until="domcontentloaded")
        page.wait_for_selector(IDLE, timeout=120_000)
        time.sleep(2)
        visits = [visit(page, url, proc.pid, seen, "cold", saliency_seed=None, ckpt=None),
                  visit(page, url, proc.pid, seen, "warm", saliency_seed=1, ckpt=WARM_CKPT)]
    finally:
        browser.close()
        pw.stop()
        proc.terminate()
        proc.wait(20)
    print(f"# machine: {os.cpu_count()} CPUs; cold = the first visitor of a fresh server (imports, worker start-up "
          f"and first loads included); warm = a second visitor asking for new results (another saliency seed, "
          f"another checkpoint's UMAP)")
    for v in visits:
        print(f"# {v['name']}: server process CPU {v['server']:.2f} s, its worker processes {v['workers']:.2f} s "
              f"(server share {v['server'] / max(v['server'] + v['workers'], 1e-9):.1%}); by step: "
              + ", ".join(f"{k} {x:.2f} s" for k, x in v["steps"].items()) + f"; wall {v['wall']:.1f} s")
    print("server_cpu " + " ".join(f"{v['name']}_server_s={v['server']:.2f} {v['name']}_workers_s={v['workers']:.2f}"
                                   for v in visits) + " goal_server_s=1.0")


WARM_CKPT = "shipped/mnist5k-vae-z16"


def visit(page, url: str, pid: int, seen: dict, name: str, saliency_seed: int | None, ckpt: str | None) -> dict:
    """Open Saliency (wait for its maps), then the Latent map with UMAP (wait for the UMAP map)."""
    server0, workers0, t0 = cpu_seconds(pid), workers_cpu(pid, seen), time.perf_counter()
    steps: dict[str, float] = {}

    def mark(step: str) -> None:
        steps[step] = cpu_seconds(pid) - server0 - sum(steps.values())

    query = f"?ll_ckpt={ckpt}" if ckpt else ""
    page.goto(url + "/saliency" + query, wait_until="domcontentloaded")
    page.wait_for_selector(IDLE, timeout=120_000)
    if saliency_seed is not None:
        box = page.get_by_role("spinbutton", name="Seed (shots and training)")
        box.fill(str(saliency_seed))
        box.press("Tab")
        page.get_by_role("button", name="Train and draw").click()
        time.sleep(1)
    _wait(page, pid, seen, lambda: page.get_by_text("Where each classifier looks").count() > 0
          and page.locator(IDLE).count() > 0, "the saliency maps")
    mark("saliency")
    page.goto(url + "/latent_map" + query, wait_until="domcontentloaded")
    page.wait_for_selector(IDLE, timeout=120_000)
    mark("latent_map_open")
    page.get_by_text("UMAP", exact=True).first.click()
    _wait(page, pid, seen, lambda: page.locator("text=/· UMAP ·/").count() > 0, "the UMAP map")
    page.wait_for_selector(IDLE, timeout=60_000)
    mark("umap")
    return {"name": name, "server": cpu_seconds(pid) - server0, "workers": workers_cpu(pid, seen) - workers0,
            "steps": steps, "wall": time.perf_counter() - t0}


if __name__ == "__main__":
    main()
