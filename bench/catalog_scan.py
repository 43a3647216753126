"""What a page rerun pays to list the checkpoints: the cached scan against a full disk scan (the
reference, measured in the same run), and config.json reads per rerun of the Beta & dimensions page.

    OMP_NUM_THREADS=1 .venv/bin/python bench/catalog_scan.py

The last line is machine-readable.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def per_call_ms(fn, n: int = 300) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def reads_per_rerun(reruns: int = 5) -> float:
    """config.json reads of the catalog while the Beta & dimensions page reruns (AppTest)."""
    from streamlit.testing.v1 import AppTest

    from ui import catalog

    count = {"n": 0}
    real = catalog._read_meta

    def counting(folder):
        count["n"] += 1
        return real(folder)

    catalog._read_meta = counting
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        at.switch_page("app_pages/beta_dims.py").run()
        count["n"] = 0
        for steps in [5, 7, 9, 11, 7][:reruns]:
            at.select_slider(key="w_beta_steps").set_value(steps).run()
        return count["n"] / reruns
    finally:
        catalog._read_meta = real


def main() -> None:
    os.environ.setdefault("LATENT_LAB_WARM_UMAP", "0")
    from ui import catalog

    n = len(catalog.scan())

    def cold():
        catalog.invalidate()
        catalog.scan()

    cold_ms, cached_ms = per_call_ms(cold), per_call_ms(catalog.scan)
    reads = reads_per_rerun()
    ttl = catalog.SCAN_TTL_S
    catalog.SCAN_TTL_S = 0.0  # the reference: no cache, every entries() call scans the disk
    try:
        uncached_reads = reads_per_rerun()
    finally:
        catalog.SCAN_TTL_S = ttl
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} python={platform.python_version()}")
    print(f"checkpoints listed: {n}")
    print(f"full scan (reference): {cold_ms:.3f} ms   cached scan: {cached_ms:.3f} ms   ratio {cold_ms / cached_ms:.0f}x")
    print(f"config.json reads per page rerun: {reads:g} cached, {uncached_reads:g} without the cache "
          f"(a full scan reads {n})")
    print(f"catalog_scan full_ms={cold_ms:.3f} cached_ms={cached_ms:.3f} ratio={cold_ms / cached_ms:.1f} "
          f"reads_per_rerun={reads:g} uncached_reads_per_rerun={uncached_reads:g}")


if __name__ == "__main__":
    main()
