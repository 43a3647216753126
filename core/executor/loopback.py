"""A real two-node Ray cluster on one machine, for tests and benchmarks: a head and one worker node, each
started with `ray start` (one CPU each), inside a network namespace of its own that has only the loopback
interface, and a PID namespace, so every Ray process ends with the namespace even if the caller is killed.
A driver script runs inside and reaches the cluster at 127.0.0.1:6379. Needs root (`unshare -n -p`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ADDRESS = "127.0.0.1:6379"

_CLUSTER = textwrap.dedent("""\
    set -e
    ip link set lo up
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=$(python3 -c "import secrets; print(secrets.token_hex(32))")
    RAY="$(dirname "$PY")/ray"
    TMPD=$(mktemp -d /tmp/ll-rayXXXX)
    cleanup() { "$RAY" stop --force >/dev/null 2>&1 || true; rm -rf "$TMPD"; }
    trap cleanup EXIT
    "$RAY" start --head --port 6379 --num-cpus 1 --include-dashboard false --disable-usage-stats \\
        --temp-dir "$TMPD" >"$OUT/head.log" 2>&1
    "$RAY" start --address 127.0.0.1:6379 --num-cpus 1 >"$OUT/worker.log" 2>&1
    "$PY" "$OUT/driver.py"
""")


def unavailable() -> str | None:
    """Why a loopback cluster cannot be started here, or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install -r requirements-ray.txt)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare / ip (util-linux, iproute2) are not available"
    probe = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace here (needs root): {probe.stderr.decode().strip()[:200]}"
    return None


def run_driver(driver: str, out: Path, env: dict[str, str] | None = None, timeout: float = 600
               ) -> subprocess.CompletedProcess:
    """Start the cluster, run `driver` (Python source; $OUT is `out`, the repository on PYTHONPATH) against it,
    stop the cluster. Returns the finished process; the nodes' logs are out/head.log and out/worker.log."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "driver.py").write_text(driver)
    repo = Path(__file__).resolve().parents[2]
    full_env = {**os.environ, "PY": sys.executable, "OUT": str(out), "PYTHONPATH": str(repo),
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    # --kill-child: if the caller is killed, the namespace's first process dies and takes every Ray process along.
    return subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "--kill-child", "bash", "-c", _CLUSTER],
                          cwd=repo, env=full_env, capture_output=True, text=True, timeout=timeout)


def node_logs(out: Path) -> str:
    return "\n".join((out / n).read_text()[-2000:] for n in ("head.log", "worker.log") if (out / n).exists())
