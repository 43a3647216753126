"""Issue 17's probe set, rerun end to end as a hostile visitor or a careless user drives it: 31 probes against the
real CLI (`python -m core ...`) and the real app (`streamlit run app.py` + headless Chromium), one line each.

    .venv/bin/python bench/hostile_probe.py [--only SUBSTRING ...] [--keep]

Each line: HELD / FAILED, the probe's name (the issue item it checks), and what was observed (exit code, seconds to
refuse, memory growth, the message shown, files left). Last line: held N/31.

How the CLI is driven. Most CLI probes run `core.__main__.main(argv)` in a process forked from this one after
`core` and torch were imported (a fresh process per call, its own pid, exit code, stdout/stderr and peak memory
read from /proc/self/status after resetting the peak through /proc/self/clear_refs): the same code as
`python -m core`, without paying ~10-20 s of interpreter start-up per call on a loaded 2-core box. The probes
where the process itself matters (kill -9, a lock held by another pid, train --out, one bad value) start the real
`python -m core` as a subprocess. All forks happen before any thread is started (AppTest, Playwright, executors).

How the app is driven. One `streamlit run app.py` with its own LATENT_LAB_RUNS in a temp folder and one worker
(LATENT_LAB_WORKERS=1, so that jobs queue), driven by Playwright with Debian's Chromium (never
`playwright install`). Server memory is the streamlit process's VmRSS, sampled every 20 ms. The page-level
checks that need a changed environment (a disk quota) or a widget only AppTest can set run in AppTest, in
this process. Every temp folder and process this script starts is removed / ended at the end.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

CHROMIUM = os.environ.get("LATENT_LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--enable-unsafe-swiftshader"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
OPERATOR_TOKEN = "op-" + "p" * 30
TOTAL = 31
TIMING = {"seconds", "train_seconds", "gen_seconds", "cell_seconds", "wall_seconds", "started", "finished",
          "worker", "host", "pid"}

WORK = Path(tempfile.mkdtemp(prefix="hostile-probe-"))
RESULTS: list[tuple[str, bool, str]] = []
_started: list[subprocess.Popen] = []


# ------------------------------------------------------------------------------------------------ reporting

def report(name: str, held: bool, figure: str) -> None:
    RESULTS.append((name, held, figure))
    print(f"{'HELD  ' if held else 'FAILED'}  {name:<58} {figure}", flush=True)


def run_probe(name: str, fn, *args, part: bool = False):
    """Run one probe and report its line; part=True: return (held, figure) for a probe made of several parts."""
    if ARGS.only and not any(s in name for s in ARGS.only):
        return None
    t = time.perf_counter()
    try:
        held, figure = fn(*args)
    except Exception as exc:  # noqa: BLE001 - a probe that could not run is a failure, with why
        held, figure = False, f"probe error: {type(exc).__name__}: {str(exc)[:300]}"
        traceback.print_exc(file=sys.stderr)
    figure = f"{figure}  [{time.perf_counter() - t:.0f} s]"
    if part:
        return held, figure
    report(name, held, figure)
    return None


PARTS: dict[str, list] = {}


def run_part(name: str, fn, *args) -> None:
    """One part of a probe reported later by report_parts (its parts run in different phases)."""
    got = run_probe(name, fn, *args, part=True)
    if got is not None:
        PARTS.setdefault(name, []).append(got)


def report_parts(name: str) -> None:
    parts = PARTS.pop(name, [])
    if parts:
        report(name, all(h for h, _ in parts), " | ".join(f for _, f in parts))


BAR = re.compile(r"^\s*\d+%\|.*\|\s*[\d.]+[kM]?/[\d.?]+[kM]? \[[^\]]*\]\s*$")  # a tqdm progress bar, alone


def one_line(err: str) -> str | None:
    """The one message line of a refusal (progress bars that ended before it do not count), or None when stderr
    holds a traceback or several lines."""
    lines = [seg for line in err.splitlines() for seg in [line.split("\r")[-1]]
             if seg.strip() and not all(BAR.match(x) for x in line.split("\r") if x.strip())]
    if "Traceback" in err or len(lines) != 1:
        return None
    return lines[0]


def short(text: str | None, n: int = 110) -> str:
    if text is None:
        return "<not one line>"
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def same_records(a: list[dict], b: list[dict]) -> bool:
    strip = lambda rs: [{k: v for k, v in r.items() if k not in TIMING and not k.endswith("_seconds")} for r in rs]  # noqa: E731
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    return sorted(map(key, strip(a))) == sorted(map(key, strip(b)))


def records(run: Path) -> list[dict]:
    p = run / "results.json"
    return json.loads(p.read_text()) if p.is_file() else []


# ------------------------------------------------------------------------------------------------ the CLI

def status_bytes(key: str, pid: str | int = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


class Ran:
    def __init__(self, rc, out, err, seconds, growth_mb):
        self.rc, self.out, self.err, self.seconds, self.growth_mb = rc, out, err, seconds, growth_mb

    @property
    def line(self) -> str | None:
        return one_line(self.err)


def cli(argv: list[str], env: dict | None = None, umask: int | None = None, limit_as_mb: int | None = None,
        timeout: float = 300) -> Ran:
    """`python -m core ARGV` in a forked child of this process (core and torch already imported)."""
    tag = WORK / f"cli-{time.monotonic_ns()}"
    pid = os.fork()
    if pid == 0:  # the child: never returns
        rc = 70
        try:
            for fd, suffix in ((1, ".out"), (2, ".err")):
                f = os.open(str(tag) + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(f, fd)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            os.environ.update(env or {})
            if umask is not None:
                os.umask(umask)
            import torch

            torch.set_num_threads(1)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # peak RSS := current RSS
            before = status_bytes("VmRSS")
            if limit_as_mb is not None:
                import resource

                cap = status_bytes("VmSize") + limit_as_mb * 2**20
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            from core.__main__ import main

            try:
                rc = main(argv)
            except SystemExit as e:  # argparse
                rc = e.code if isinstance(e.code, int) else 2
            Path(str(tag) + ".json").write_text(json.dumps({"growth": (status_bytes("VmHWM") - before) / 2**20}))
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc if isinstance(rc, int) else 70)
    t0 = time.perf_counter()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() - t0 > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = -1
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status) if status != -1 else "timeout"
    read = lambda s: Path(str(tag) + s).read_text() if Path(str(tag) + s).exists() else ""  # noqa: E731
    stats = json.loads(read(".json") or "{}")
    return Ran(rc, read(".out"), read(".err"), seconds, stats.get("growth", float("nan")))


def real_cli(argv: list[str], timeout: float = 300, **popen) -> Ran:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "core", *argv], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"}, **popen)
    return Ran(r.returncode, r.stdout, r.stderr, time.perf_counter() - t0, float("nan"))


def popen_cli(argv: list[str], log: Path) -> subprocess.Popen:
    f = open(log, "w")
    p = subprocess.Popen([sys.executable, "-m", "core", *argv], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    _started.append(p)
    return p


def descendants(pid: int) -> dict[int, int]:
    """pid -> depth below `pid` (1 = child) of every live process under it."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    depth = {pid: 0}
    changed = True
    while changed:
        changed = False
        for p, pp in parent.items():
            if pp in depth and p not in depth:
                depth[p] = depth[pp] + 1
                changed = True
    return {p: d for p, d in depth.items() if d > 0}


TRAIN_TINY = ["train", "--dataset", "digits", "--model", "ae", "--latent-dim", "2", "--hidden", "16", "--epochs", "1",
              "--device", "cpu"]
FS_TINY = ["fewshot", "--dataset", "digits", "--shots", "2", "--device", "cpu", "--workers", "0"]


# ------------------------------------------------------------------------------------------------ hostile files

def npy_bytes(arr=None, header: dict | None = None, body: bytes = b"", allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    if header is not None:
        np.lib.format.write_array_header_1_0(buf, header)
        buf.write(body)
    else:
        np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def write_npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return path


class Boom:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile_npz(folder: Path) -> dict[str, dict[str, Path]]:
    """A representative set of the issue's 28 hostile .npz files, by group."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    y = np.arange(40) % 4
    X, Y = npy_bytes(x), npy_bytes(y)
    marker = folder / "PWNED"
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = Boom(str(marker)), 1
    g = {"pickles": {}, "containers": {}, "values": {}, "shapes": {}}
    w = lambda grp, name, members: g[grp].__setitem__(name, write_npz(folder / f"{name}.npz", members))  # noqa: E731
    w("pickles", "object-X-runs-code", {"X.npy": npy_bytes(obj, allow_pickle=True), "y.npy": Y})
    w("pickles", "object-y", {"X.npy": X, "y.npy": npy_bytes(np.array(["a", 1], dtype=object), allow_pickle=True)})
    w("pickles", "pickle-not-npy", {"X.npy": b"\x80\x04" + __import__("pickle").dumps(Boom(str(marker)))[2:],
                                    "y.npy": Y})
    (folder / "not-a-zip.npz").write_bytes(b"hello, I am text" * 10)
    g["containers"]["not-a-zip"] = folder / "not-a-zip.npz"
    full = write_npz(folder / "full.npz", {"X.npy": X, "y.npy": Y}).read_bytes()
    (folder / "truncated.npz").write_bytes(full[: len(full) // 2])
    g["containers"]["truncated"] = folder / "truncated.npz"
    w("containers", "empty-zip", {})
    w("containers", "missing-y", {"X.npy": X})
    w("containers", "missing-X", {"y.npy": Y})
    w("containers", "junk-header", {"X.npy": b"\x93NUMPY\x01\x00junk", "y.npy": Y})
    xf = x.astype(np.float32)
    xf[0, 0, 0] = np.nan
    w("values", "nan-pixels", {"X.npy": npy_bytes(xf), "y.npy": Y})
    xf[0, 0, 0] = np.inf
    w("values", "inf-pixels", {"X.npy": npy_bytes(xf), "y.npy": Y})
    w("values", "negative-labels", {"X.npy": X, "y.npy": npy_bytes(y - 2)})
    w("values", "float-labels", {"X.npy": X, "y.npy": npy_bytes(y + 0.5)})
    w("values", "length-mismatch", {"X.npy": X, "y.npy": npy_bytes(y[:30])})
    w("values", "zero-rows", {"X.npy": npy_bytes(x[:0]), "y.npy": npy_bytes(y[:0])})
    w("shapes", "1d-X", {"X.npy": npy_bytes(x.reshape(-1)[:40]), "y.npy": Y})
    w("shapes", "6d-X", {"X.npy": npy_bytes(x.reshape(40, 1, 1, 2, 4, 8)), "y.npy": Y})
    w("shapes", "string-X", {"X.npy": npy_bytes(np.array(["x" * 8] * 40)), "y.npy": Y})
    w("shapes", "complex-X", {"X.npy": npy_bytes(x.astype(np.complex64)), "y.npy": Y})
    w("shapes", "header-claims-1e12", {"X.npy": npy_bytes(header={"descr": "|u1", "fortran_order": False,
                                                                  "shape": (10**6, 10**3, 10**3)}, body=b"\0" * 64),
                                       "y.npy": Y})
    w("shapes", "huge-label-values", {"X.npy": X, "y.npy": npy_bytes(y.astype(np.int64) * 2**40)})
    return g


def npz_group_probe(files: dict[str, Path]) -> tuple[bool, str]:
    """Each file through `train --dataset npz:FILE`: held = exit 1/2 with one line and no traceback, nothing under
    --out, no code run (the PWNED marker); or, for files a trainer may take (NaN pixels...), no traceback."""
    bad = []
    marker = next(iter(files.values())).parent / "PWNED"
    for name, path in files.items():
        out = WORK / f"npz-out-{name}"
        r = cli([*TRAIN_TINY, "--dataset", f"npz:{path}", "--out", str(out)], timeout=120)
        ok = r.rc in (1, 2) and r.line is not None and r.line.startswith("error:") and not out.exists()
        if not ok:
            bad.append(f"{name}: rc={r.rc} {short(r.line or r.err[-200:], 80)}")
    if marker.exists():
        bad.append("PWNED marker created: code ran")
    if bad:
        return False, f"{len(bad)}/{len(files)} not refused in one line: " + "; ".join(bad)
    return True, f"{len(files)}/{len(files)} refused in one line (exit 1), no traceback, nothing written, no code run"


def probe_hostile_checkpoints() -> tuple[bool, str]:
    """Hostile checkpoint folders through `info`: each refused in one line (exit 1), nothing unpickled."""
    import torch
    from safetensors.torch import save as st_save

    from core.checkpoints import save_checkpoint
    from core.config import ModelConfig
    from core.models import build_model

    base = save_checkpoint(WORK / "ck-base", build_model(ModelConfig(kind="ae", input_shape=(8,), latent_dim=2,
                                                                     hidden=16)), dataset_id="wine")
    marker = WORK / "PWNED-ckpt"
    cases = {}

    def variant(name, edit):
        folder = WORK / f"ck-{name}"
        shutil.copytree(base, folder)
        edit(folder)
        cases[name] = folder

    def tampered_weights(f):  # weights changed after saving: their sha256 no longer matches config.json's
        from safetensors.torch import load_file

        w = load_file(f / "model.safetensors")
        next(iter(w.values())).add_(1.0)
        (f / "model.safetensors").write_bytes(st_save(w))

    def pickle_weights(f):
        buf = io.BytesIO()
        torch.save({"x": Boom(str(marker))}, buf)
        (f / "model.safetensors").write_bytes(buf.getvalue())

    def lying_header(f):
        (f / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")

    def config_not_json(f):
        (f / "config.json").write_text("{'model': __import__('os')}")

    def unknown_kind(f):
        meta = json.loads((f / "config.json").read_text())
        meta["model"]["kind"] = "../../evil"
        (f / "config.json").write_text(json.dumps(meta))

    def symlinked_weights(f):
        (f / "model.safetensors").unlink()
        (f / "model.safetensors").symlink_to("/etc/passwd")

    for name, edit in [("tampered-weights", tampered_weights), ("pickle-weights", pickle_weights),
                       ("lying-header", lying_header), ("config-not-json", config_not_json),
                       ("unknown-kind", unknown_kind), ("symlinked-weights", symlinked_weights)]:
        variant(name, edit)
    bad = []
    for name, folder in cases.items():
        r = cli(["info", str(folder)])
        if not (r.rc == 1 and r.line):
            bad.append(f"{name}: exit {r.rc} {short(r.line or r.err[-160:], 70)}")
    if marker.exists():
        bad.append("PWNED marker: a pickle ran")
    return not bad, f"{len(cases) - len(bad)}/{len(cases)} refused in one line (exit 1), nothing unpickled" + \
        (f"; not: {'; '.join(bad)}" if bad else "")


# ------------------------------------------------------------------------------------------------ CLI probes

def probe_train_out() -> tuple[bool, str]:
    """Item 2: --out on a folder holding a foreign file, and on an existing file (refused before training)."""
    folder = WORK / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("years of work")
    r1 = real_cli([*TRAIN_TINY, "--out", str(folder)])
    r2 = cli([*TRAIN_TINY, "--out", str(folder), "--overwrite"])
    notes = WORK / "notes.txt"
    notes.write_text("keep me")
    r3 = cli([*TRAIN_TINY, "--epochs", "50", "--out", str(notes)])
    kept = (folder / "chapter1.tex").read_text() == "years of work" and notes.read_text() == "keep me"
    siblings = sorted(p.name for p in WORK.iterdir() if p.name.startswith((".thesis", ".notes")))
    held = (r1.rc == r2.rc == r3.rc == 1 and kept and not siblings and all(r.line for r in (r1, r2, r3))
            and r3.seconds < 10)
    return held, (f"exit {r1.rc}/{r2.rc} (folder, --overwrite), {r3.rc} (file, refused in {r3.seconds:.1f} s); "
                  f"files kept: {kept}; moved-aside folders: {len(siblings)}; '{short(r1.line, 70)}'")


def probe_half_saved_generator() -> tuple[bool, str]:
    """Item 3: a generator folder holding 3 of its 10 class folders (a kill mid-save) is retrained on resume."""
    spec = [*FS_TINY, "--seeds", "1", "--methods", "none", "multi-vae", "--steps", "10", "--n-generated", "5",
            "--gen", "multi-vae.steps=5", "--gen", "multi-vae.hidden=32", "--gen", "multi-vae.latent_dim=4"]
    a, b = WORK / "gen-a", WORK / "gen-b"
    ra, rb = cli([*spec, "--out", str(a)]), cli([*spec, "--out", str(b)])
    if ra.rc != 0 or rb.rc != 0:
        return False, f"the runs themselves failed: {short(ra.err[-200:])}"
    folder = b / "generators" / "multi-vae-k2-s0"
    parts = sorted(p for p in folder.iterdir() if p.is_dir())
    for p in folder.iterdir():  # the kill: 3 of 10 class folders, no completion marker, no cells
        if p.is_file() or p not in parts[:3]:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for name in ("results.json", "results.csv", "summary.csv", "generators.json"):
        (b / name).unlink(missing_ok=True)
    rr = cli([*spec, "--out", str(b)])
    after = sorted(p.name for p in folder.iterdir() if p.is_dir())
    ref = {r["method"]: r.get("n_added") for r in records(a)}
    got = {r["method"]: r.get("n_added") for r in records(b)}
    held = rr.rc == 0 and same_records(records(a), records(b)) and len(after) == len(parts)
    return held, (f"resume exit {rr.rc}; class folders after {len(after)}/{len(parts)}; n_added {got} vs "
                  f"uninterrupted {ref}; records equal: {same_records(records(a), records(b))}")


def probe_two_writers() -> tuple[bool, str]:
    """Item 5: a second `fewshot` on a run folder another run holds; then another spec on that folder."""
    run = WORK / "two-writers"
    first = popen_cli([*FS_TINY, "--seeds", "3", "--methods", "none", "--steps", "300", "--out", str(run)],
                      WORK / "first.log")
    deadline = time.time() + 120
    while not (run / "run.lock").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = cli([*FS_TINY, "--seeds", "1", "--shots", "5", "--methods", "none", "--steps", "5", "--out", str(run)])
    names_holder = f"pid {first.pid}" in second.err
    first.wait(240)
    other = cli([*FS_TINY, "--seeds", "3", "--methods", "none", "--steps", "7", "--out", str(run)])
    shots = sorted({r["shots"] for r in records(run)})
    held = (second.rc not in (0, "timeout") and names_holder and second.line is not None and first.returncode == 0
            and other.rc not in (0, "timeout") and shots == [2] and len(records(run)) == 3)
    return held, (f"second writer exit {second.rc} in {second.seconds:.1f} s, names holder pid: {names_holder} "
                  f"('{short(second.line, 60)}'); other spec exit {other.rc}; records {len(records(run))} of "
                  f"shots {shots} (the holder's)")


def probe_bombs() -> tuple[bool, str]:
    """Item 7: an .npz and a gzip IDX that unpack past the cap, refused from their headers; MemoryError one line."""
    n = 347_000 * 28 * 28  # 272 MB of uint8 zeros, 1.09 GB as float32 (over the 1 GiB cap)
    bomb = WORK / "bomb.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (347_000, 28, 28)})
    chunk = bytes(8 << 20)
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("X.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            left = n
            while left > 0:
                f.write(chunk[:left])
                left -= len(chunk)
        zf.writestr("y.npy", npy_bytes((np.arange(347_000) % 10).astype(np.uint8)))
    idx = WORK / "bomb-idx"
    idx.mkdir()
    with gzip.open(idx / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", 347_000, 28, 28))
        left = n
        while left > 0:
            f.write(chunk[:left])
            left -= len(chunk)
    with gzip.open(idx / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 347_000) + bytes(347_000))
    r1 = cli([*TRAIN_TINY, "--dataset", f"npz:{bomb}", "--out", str(WORK / "b1")])
    r2 = cli([*TRAIN_TINY, "--dataset", f"idx:{idx}", "--out", str(WORK / "b2")])
    # MemoryError: an honest 100 MB npz (400 MB as float32, under the cap) with the address space held to +150 MB
    honest = WORK / "honest.npz"
    np.savez_compressed(honest, X=np.zeros((127_551, 28, 28), np.uint8), y=np.arange(127_551) % 10)
    r3 = cli([*TRAIN_TINY, "--dataset", f"npz:{honest}", "--out", str(WORK / "b3")], limit_as_mb=150)
    ok_bombs = all(r.rc == 1 and r.line and r.growth_mb < 100 and r.seconds < 10 for r in (r1, r2))
    ok_mem = r3.rc == 1 and r3.line is not None and "not enough memory" in r3.line
    return ok_bombs and ok_mem, (f"npz {bomb.stat().st_size >> 10} KB: exit {r1.rc}, +{r1.growth_mb:.0f} MB, "
                                 f"{r1.seconds:.1f} s; gzip IDX: exit {r2.rc}, +{r2.growth_mb:.0f} MB, "
                                 f"{r2.seconds:.1f} s ('{short(r2.line, 50)}'); MemoryError: exit {r3.rc} "
                                 f"'{short(r3.line, 60)}'")


BAD_GEN = ["vae.batch_size=0", "vae.lr=abc", "vae.latent_dim=[1,2]", "vae.steps=-5", "vae.latent_dim=-1"]


def probe_setting_values_cli() -> tuple[bool, str]:
    """Item 8 (CLI): every bad value is one line, exit 2, before any work (no run folder)."""
    bad, seen = [], []
    spec = [*FS_TINY, "--seeds", "1", "--methods", "none", "vae-noise", "--steps", "5"]
    for i, value in enumerate(BAD_GEN + ["--steps -5", "lr=abc"]):
        out = WORK / f"set-{i}"
        if value.startswith("--"):
            argv = [*spec[:-2], *value.split(), "--out", str(out)]
        else:
            argv = [*spec, "--out", str(out)] + (["--gen", value] if "." in value else ["--recipe", value])
        r = real_cli(argv) if i == 0 else cli(argv)
        seen.append(r.seconds)
        if not (r.rc == 2 and r.line and not out.exists()):
            bad.append(f"{value}: exit {r.rc} {short(r.line or r.err[-160:], 70)}")
    return not bad, (f"{len(BAD_GEN) + 2 - len(bad)}/{len(BAD_GEN) + 2} refused (exit 2, one line, nothing run), "
                     f"in {min(seen):.1f}-{max(seen):.1f} s" + (f"; not: {'; '.join(bad)}" if bad else ""))


def probe_augment() -> tuple[bool, str]:
    """Item 9: augment --out on an existing file; bad --param values."""
    aug = ["augment", "--dataset", "digits", "--shots", "2", "--method", "mixup", "--n", "3"]
    mine = WORK / "mine.npz"
    mine.write_bytes(b"precious")
    r0 = cli([*aug, "--out", str(mine)])
    bad = []
    for p in ("nope=1", 'alpha="x"', "alpha=NaN"):
        out = WORK / f"aug-{len(bad)}-{p[:4]}.npz"
        r = cli([*aug, "--param", p, "--out", str(out)])
        if not (r.rc == 2 and r.line and not out.exists() and (p != "alpha=NaN" or "NaN" in r.line)):
            bad.append(f"{p}: exit {r.rc} {short(r.line or r.err[-120:], 60)}")
    held = r0.rc == 2 and mine.read_bytes() == b"precious" and not bad
    return held, (f"existing --out: exit {r0.rc}, file kept {mine.read_bytes() == b'precious'} "
                  f"('{short(r0.line, 60)}'); bad params refused in one line: {3 - len(bad)}/3"
                  + (f"; not: {'; '.join(bad)}" if bad else ""))


def probe_device_and_combo() -> tuple[bool, str]:
    """Item 10: --device nonsense and the method 'classic+'."""
    r1 = cli([*TRAIN_TINY, "--device", "nonsense", "--out", str(WORK / "dev")])
    r2 = cli([*FS_TINY, "--seeds", "1", "--methods", "none", "classic+", "--steps", "5", "--out", str(WORK / "cp")])
    held = r1.rc not in (0,) and r1.line and "nonsense" in r1.line and r2.rc == 2 and r2.line and "classic+" in r2.line
    return bool(held), f"--device nonsense: exit {r1.rc} '{short(r1.line, 60)}'; classic+: exit {r2.rc} " \
                       f"'{short(r2.line, 60)}'"


def probe_one_class_idx() -> tuple[bool, str]:
    """Item 10: an IDX set whose labels are all one value, few-shot (an npz of one class is refused alike)."""
    folder = WORK / "one-class-idx"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (60, 28, 28), dtype=np.uint8)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", 60, 28, 28) + images.tobytes())
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 60) + bytes([3] * 60))
    np.savez(WORK / "one-class.npz", X=images, y=np.full(60, 3))
    r1 = cli(["fewshot", "--dataset", f"idx:{folder}", "--shots", "1", "--seeds", "1", "--methods", "none",
              "--steps", "5", "--device", "cpu", "--workers", "0", "--out", str(WORK / "oc1")])
    r2 = cli(["fewshot", "--dataset", f"npz:{WORK / 'one-class.npz'}", "--shots", "1", "--seeds", "1", "--methods",
              "none", "--steps", "5", "--device", "cpu", "--workers", "0", "--out", str(WORK / "oc2")])
    held = r1.rc != 0 and r2.rc != 0 and r1.line and "2 classes" in r1.line and not records(WORK / "oc1")
    return bool(held), f"IDX: exit {r1.rc} '{short(r1.line, 60)}'; npz: exit {r2.rc}"


def probe_file_modes() -> tuple[bool, str]:
    """Item 10: run files follow the umask (027 -> group-readable), not 0600."""
    out = WORK / "modes"
    r = cli([*TRAIN_TINY, "--out", str(out / "ck")], umask=0o027)
    r2 = cli([*FS_TINY, "--seeds", "1", "--methods", "none", "--steps", "5", "--out", str(out / "run")], umask=0o027)
    modes = sorted({oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()})
    held = r.rc == 0 and r2.rc == 0 and modes == ["0o640"]
    return held, f"exit {r.rc}/{r2.rc}; file modes under umask 027: {modes}"


# ------------------------------------------------------------------------------------------------ kills and stops

FS_KILL = [*FS_TINY, "--seeds", "3", "--methods", "none", "mixup", "--steps", "300"]


def probe_kill_run(reference: Path) -> tuple[bool, str]:
    """kill -9 of a run (the whole process) mid-way, then a resume: the records equal an uninterrupted run's."""
    run = WORK / "killed-run"
    p = popen_cli([*FS_KILL, "--out", str(run)], WORK / "killed.log")
    deadline = time.time() + 240
    while len(records(run)) < 1 and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    had = len(records(run))
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    if had >= len(records(reference)):
        return False, "the run finished before the kill (probe inconclusive)"
    r = cli([*FS_KILL, "--out", str(run)])
    equal = same_records(records(reference), records(run))
    return r.rc == 0 and equal, (f"killed with {had}/{len(records(reference))} cells written; resume exit {r.rc}; "
                                 f"records equal an uninterrupted run's: {equal}; lock left: "
                                 f"{(run / 'run.lock').exists()}")


def probe_kill_worker(reference: Path) -> tuple[bool, str]:
    """kill -9 of a worker process mid-cell: the cell is started once more; the run ends with every record."""
    run = WORK / "killed-worker"
    argv = [a if a != "0" or i == 0 else a for i, a in enumerate(FS_KILL)]
    argv[argv.index("--workers") + 1] = "1"
    p = popen_cli([*argv, "--out", str(run)], WORK / "worker.log")
    deadline = time.time() + 240
    victim = None
    while time.time() < deadline and p.poll() is None and victim is None:
        time.sleep(0.1)
        if records(run):  # a cell is done; the worker is at work on the next
            deep = [q for q, d in descendants(p.pid).items() if d >= 2]
            victim = deep[0] if deep else None
    if victim is None:
        p.kill()
        return False, "no worker process found to kill (probe inconclusive)"
    os.kill(victim, signal.SIGKILL)
    rc = p.wait(300)
    log = (WORK / "worker.log").read_text()
    equal = same_records(records(reference), records(run))
    return rc == 0 and equal, (f"worker pid {victim} killed; run exit {rc}; records {len(records(run))}/"
                               f"{len(records(reference))}, equal to an uninterrupted run's: {equal}; traceback in "
                               f"output: {'Traceback' in log}")


def probe_kill_training() -> tuple[bool, str]:
    """kill -9 of `train --out` mid-training leaves nothing half-written under --out; the same command then works."""
    out = WORK / "killed-train"
    argv = [*TRAIN_TINY, "--epochs", "200", "--out", str(out)]
    p = popen_cli(argv, WORK / "train.log")
    deadline = time.time() + 120
    while time.time() < deadline and not re.search(r"\| [1-9]\d*/\d+ ", (WORK / "train.log").read_text()):
        time.sleep(0.05)  # until the bar shows batches done: mid-training
    at = re.findall(r"\| (\d+/\d+) ", (WORK / "train.log").read_text())
    running = p.poll() is None
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    if not running:
        return False, "the training ended before the kill (probe inconclusive)"
    left = sorted(q.name for q in WORK.iterdir() if "killed-train" in q.name)
    r = cli([*TRAIN_TINY, "--out", str(out)])
    ok_ckpt = (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    return left == [] and r.rc == 0 and ok_ckpt, f"killed at batch {at[-1] if at else '?'}; left under/beside " \
                                                 f"--out: {left or 'nothing'}; " \
                                                 f"rerun exit {r.rc}, checkpoint complete: {ok_ckpt}"


def probe_stop_training() -> tuple[bool, str]:
    """Stop of a training running in a worker process (as the app runs it): seconds from Stop to the job's end."""
    from core.executor import get_executor
    from core.training_job import train_task

    times = []
    with get_executor("local", workers=1) as ex:
        for _ in range(2):
            h = ex.submit(train_task, {"model": {"kind": "vae", "latent_dim": 2, "hidden": 64},
                                       "train": {"epochs": 200, "batch_size": 32, "seed": 0}, "dataset": "mnist5k"},
                          owner="probe")
            deadline = time.time() + 120
            while (h.status != "running" or not (h.progress or {}).get("step")) and time.time() < deadline:
                time.sleep(0.05)
            t = time.perf_counter()
            h.cancel()
            h.wait(30)
            times.append(time.perf_counter() - t)
            res = h.result(0) if h.status == "done" else None
    held = max(times) < 1.0
    return held, f"Stop -> job ended in {', '.join(f'{s:.2f}' for s in times)} s (goal: within ~0.5-0.7 s); " \
                 f"result kept: {bool(res)}"


def probe_stop_run() -> tuple[bool, str]:
    """Stop of a few-shot run with a cell in a worker: seconds to return; the lock released; resumable."""
    from core.executor import get_executor
    from core.fewshot import ExperimentSpec, run_experiment

    run = WORK / "stopped-run"
    spec = ExperimentSpec(dataset="digits", device="cpu", seeds=3, shots=[2], methods=["none"],
                          recipe={"steps": 3000})
    stop = threading.Event()
    returned = {}
    with get_executor("local", workers=1) as ex:
        def go():
            returned["records"] = run_experiment(spec, run, stop=stop, executor=ex)
            returned["t"] = time.perf_counter()

        th = threading.Thread(target=go)
        th.start()
        deadline = time.time() + 120
        while not any(d >= 2 for d in descendants(os.getpid()).values()) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)  # the first cell is training in the worker
        t = time.perf_counter()
        stop.set()
        th.join(60)
        seconds = returned.get("t", float("inf")) - t
    lock = (run / "run.lock").exists()
    return seconds < 1.0 and not lock, f"Stop -> run returned in {seconds:.2f} s with " \
                                       f"{len(returned.get('records', []))} records; lock left: {lock}"


# ------------------------------------------------------------------------------------------------ AppTest probes

def apptest_env(runs: Path) -> None:
    from app_support import shipped_root

    os.environ["LATENT_LAB_RUNS"] = str(runs)
    os.environ["LATENT_LAB_WARM_UMAP"] = "0"
    if shipped_root() is None:
        raise RuntimeError("the shipped checkpoints are missing")


def probe_setting_values_page() -> tuple[bool, str]:
    """Item 8 (page): batch_size=0 on the Few-shot page is shown as 'your settings', not 'internal error'."""
    from app_support import new_app

    apptest_env(WORK / "at-runs")
    at = new_app("app_pages/fewshot.py")
    at.number_input(key="w_fs_gen_vae_batch_size").set_value(0)
    at.button[0].click().run()
    text = at.error[0].value if at.error else "<no error shown>"
    held = not at.exception and "your settings" in text and "internal error" not in text \
        and "_ll_fs_job" not in at.session_state
    return held, f"page says: '{short(text, 90)}'; run started: {'_ll_fs_job' in at.session_state}"


def probe_disk_quota() -> tuple[bool, str]:
    """Item 10: trainings and few-shot runs started from the app respect a disk quota on the runs folder."""
    from app_support import new_app

    runs = WORK / "quota-runs"
    apptest_env(runs)
    (runs / "checkpoints" / "old").mkdir(parents=True)
    (runs / "checkpoints" / "old" / "model.safetensors").write_bytes(b"\0" * (2 << 20))
    os.environ["LATENT_LAB_DISK_QUOTA_MB"] = "1"
    try:
        at = new_app("app_pages/train_load.py")
        at.number_input(key="w_t_epochs").set_value(1)
        at.button[0].click().run()
        t_msg = next((e.value for e in at.error if "quota" in e.value), None)
        t_job = "_ll_train_job" in at.session_state and at.session_state["_ll_train_job"] is not None
        fs = new_app("app_pages/fewshot.py")
        fs.button[0].click().run()
        f_msg = next((e.value for e in fs.error if "quota" in e.value), None)
        f_job = "_ll_fs_job" in fs.session_state and fs.session_state["_ll_fs_job"] is not None
    finally:
        del os.environ["LATENT_LAB_DISK_QUOTA_MB"]
    held = bool(t_msg and f_msg and not t_job and not f_job)
    return held, f"train: '{short(t_msg, 70)}'; few-shot refused: {bool(f_msg) and not f_job}"


# ------------------------------------------------------------------------------------------------ the app

class App:
    """streamlit run app.py (own runs folder, one worker) + Chromium; RSS sampling of the server."""

    def __init__(self):
        self.runs = WORK / "app-runs"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ, LATENT_LAB_RUNS=str(self.runs), LATENT_LAB_WARM_UMAP="0", LATENT_LAB_WORKERS="1",
                   LATENT_LAB_OPERATOR_TOKEN=OPERATOR_TOKEN)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(self.port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=open(WORK / "server.log", "w"),
            stderr=subprocess.STDOUT, start_new_session=True)
        _started.append(self.proc)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        self.pw = sync_playwright().start()
        self.chromium = self.pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)

    def rss(self) -> int:
        return status_bytes("VmRSS", self.proc.pid)

    def peak_during(self, action) -> tuple[float, float, object]:
        """(max RSS growth in MB while action() ran, seconds, action's value)."""
        before, peak, done = self.rss(), [0], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], self.rss())
                time.sleep(0.02)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t = time.perf_counter()
        try:
            value = action()
        finally:
            seconds = time.perf_counter() - t
            done.set()
            th.join()
        return (max(peak[0], self.rss()) - before) / 2**20, seconds, value

    def context(self):
        return self.chromium.new_context(viewport={"width": 1400, "height": 1000})

    def open(self, page, path: str) -> None:
        page.goto(f"{self.url}/{path}", wait_until="domcontentloaded")
        page.wait_for_selector("[data-testid='stApp']", timeout=90_000)
        settle(page)

    def close(self) -> None:
        for step in (self.chromium.close, self.pw.stop):
            try:
                step()
            except Exception:  # noqa: BLE001
                pass
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def settle(page, timeout: float = 120_000) -> None:
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout)
    page.wait_for_timeout(400)


def exceptions(page) -> int:
    return page.locator("[data-testid='stException']").count()


def upload(page, path: Path) -> None:
    page.locator("[data-testid='stFileUploader'] input[type='file']").first.set_input_files(str(path))


def wait_text(page, pattern: str, timeout: float = 60_000) -> str:
    loc = page.get_by_text(re.compile(pattern)).first
    loc.wait_for(timeout=timeout)
    return loc.inner_text()


def checkpoint_zip(model: dict, weights: bytes, extra: dict | None = None, prefix: str = "x/") -> bytes:
    meta = {"format_version": 1, "model": model, "dataset": "mnist5k", "class_names": [str(i) for i in range(10)],
            "weights_sha256": hashlib.sha256(weights).hexdigest()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(prefix + "config.json", json.dumps(meta))
        zf.writestr(prefix + "model.safetensors", weights)
        for name, blob in (extra or {}).items():
            zf.writestr(name, blob)
    return buf.getvalue()


def probe_huge_claim_upload(app: App) -> tuple[bool, str]:
    """Item 1: the 684-byte checkpoint zip claiming ~3e9 parameters, uploaded on Train or load."""
    from safetensors.torch import save as st_save

    blob = checkpoint_zip({"kind": "vae", "input_shape": [196608], "hidden": 2048, "latent_dim": 1024,
                           "arch": "mlp"}, st_save({}))
    path = WORK / "huge-claim.zip"
    path.write_bytes(blob)
    growth, seconds, msg, n_exceptions = upload_rejected(app, path)
    held = growth < 100 and seconds < 5 and n_exceptions == 0
    return held, f"{len(blob)} bytes: server RSS +{growth:.0f} MB, refused in {seconds:.1f} s " \
                 f"(upload and page included): '{short(msg, 80)}'"


def upload_rejected(app: App, path: Path) -> tuple[float, float, str, int]:
    """Upload a checkpoint file on Train or load in a fresh browser context, until the page says it was
    rejected -> (server RSS growth MB, seconds, the message, exceptions shown on the page)."""
    ctx = app.context()
    page = ctx.new_page()
    app.open(page, "train_load")

    def act():
        upload(page, path)
        return wait_text(page, r"Upload rejected", 60_000)

    try:
        growth, seconds, msg = app.peak_during(act)
        return growth, seconds, msg, exceptions(page)
    finally:
        ctx.close()


def probe_decoder_spec(app: App) -> tuple[bool, str]:
    """Item 6: a small valid upload with large zero weights: no oversized decoder spec goes to the browser."""
    import torch
    from safetensors.torch import save as st_save

    from core.config import ModelConfig
    from core.models import build_model

    # 28 MB of weights (under the 64 MB an upload may unpack to), a 14 MB decoder: ~19 MB as a browser spec
    cfg = ModelConfig(kind="ae", input_shape=(1, 28, 28), latent_dim=16, hidden=2048, arch="mlp")
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    weights = st_save({k: v.contiguous() for k, v in model.state_dict().items()})
    n_bytes = len(weights)
    path = WORK / "zero-decoder.zip"
    path.write_bytes(checkpoint_zip(cfg.to_dict(), weights))
    del model, weights
    ctx = app.context()
    page = ctx.new_page()
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(len(data))))
    app.open(page, "train_load")
    upload(page, path)
    settle(page)
    rejected = page.get_by_text(re.compile("Upload rejected")).count()
    rejected = page.get_by_text(re.compile("Upload rejected")).first.inner_text() if rejected else ""
    page.locator("[data-testid='stSidebarNav'] a", has_text="Interpolation").first.click()
    settle(page)
    try:  # the decoder's part of the page comes after the rest
        caption = short(wait_text(page, r"Decoding on the server", 180_000), 90)  # it encodes in the worker first
    except Exception:  # noqa: BLE001 - not shown
        caption = None
    settle(page)
    biggest = max(frames, default=0)
    ctx.close()
    held = not rejected and caption is not None and biggest < 9 * 2**20
    return held, (f"upload {path.stat().st_size >> 10} KB holding {n_bytes >> 20} MB of weights: largest of "
                  f"{len(frames)} websocket frames to the browser {biggest / 2**20:.2f} MB; the page says: '{caption}'"
                  + (f"; '{short(rejected, 80)}'" if rejected else ""))


def probe_nan_link(app: App) -> tuple[bool, str]:
    """Item 10: nan/inf in link parameters are ignored with the note."""
    ctx = app.context()
    page = ctx.new_page()
    seen = []
    for q, name in (("lam=nan", "lam"), ("t=inf", "t"), ("lam=-Infinity", "lam")):
        app.open(page, f"interpolation?{q}")
        seen.append(page.get_by_text(f"Ignored bad link parameter(s): {name}.").count() > 0 and exceptions(page) == 0)
    ctx.close()
    return all(seen), f"note shown for lam=nan, t=inf, lam=-Infinity: {seen}"


def url_probe(app: App, urls: list[str], forbidden=()) -> tuple[bool, str]:
    """Each URL renders its page with no exception and no traceback; the hostile value is not kept in the link."""
    ctx = app.context()
    page = ctx.new_page()
    bad = []
    for u in urls:
        app.open(page, u)
        body = page.locator("[data-testid='stApp']").inner_text()
        key, _, value = u.split("?", 1)[1].partition("=")
        now = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query).get(key, [None])[0]
        kept = key in SHARED_KEYS and now == urllib.parse.unquote(value)  # an unknown key does nothing either way
        if exceptions(page) or "Traceback" in body or kept or any(f in body for f in forbidden):
            bad.append(f"{u} (exception {exceptions(page)}, kept in link {bool(kept)})")
    ctx.close()
    return not bad, f"{len(urls) - len(bad)}/{len(urls)} rendered without exception, value not kept" + \
        (f"; not: {'; '.join(bad)}" if bad else "")


SHARED_KEYS = ("dataset", "ckpt", "i0", "i1", "lam", "t", "za", "zb", "pins", "grid", "hgrid")  # ui.state.SHARED


def data_upload_probe(app: App, files: dict[str, bytes], page_path="your_data") -> tuple[bool, str]:
    """Each file uploaded on Your data: 'Not stored' in under 10 s, server RSS +<100 MB, nothing stored."""
    bad, worst, slowest = [], 0.0, 0.0
    for name, blob in files.items():
        path = WORK / "uploads" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(blob)
        ctx = app.context()
        page = ctx.new_page()
        app.open(page, page_path)
        upload(page, path)
        settle(page)

        def act():
            page.get_by_role("button", name="Check and store").click()
            return wait_text(page, r"Not stored|Stored as", 60_000)

        growth, seconds, msg = app.peak_during(act)
        worst, slowest = max(worst, growth), max(slowest, seconds)
        if not msg.startswith("Not stored") or growth > 100 or exceptions(page):
            bad.append(f"{name}: '{short(msg, 60)}' +{growth:.0f} MB")
        ctx.close()
    stored = list((app.runs).rglob("*.npz"))
    return not bad and not stored, (f"{len(files) - len(bad)}/{len(files)} refused ('Not stored'), server RSS at most "
                                    f"+{worst:.0f} MB, at most {slowest:.1f} s; data sets stored: {len(stored)}"
                                    + (f"; not: {'; '.join(bad)}" if bad else ""))


def zip_with(members: list[tuple[str, bytes]], big: tuple[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, blob in members:
            zf.writestr(name, blob)
        if big:
            chunk = bytes(8 << 20)
            with zf.open(big[0], "w", force_zip64=True) as f:
                left = big[1]
                while left > 0:
                    f.write(chunk[:left])
                    left -= len(chunk)
    return buf.getvalue()


def png(seed: int) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 20), dtype=np.uint8)).save(b, format="PNG")
    return b.getvalue()


PETS = [(f"pets/{c}/{i}.png", png(10 * j + i)) for j, c in enumerate(("cat", "dog")) for i in range(4)]


def checkpoint_upload_probe(app: App, blobs: dict[str, bytes], escape: Path | None = None) -> tuple[bool, str]:
    bad, worst, slowest = [], 0.0, 0.0
    for name, blob in blobs.items():
        path = WORK / "uploads" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(blob)
        try:
            growth, seconds, msg, n_exceptions = upload_rejected(app, path)
        except Exception as exc:  # noqa: BLE001
            growth, seconds, msg, n_exceptions = 0.0, 0.0, f"no rejection shown ({type(exc).__name__})", 0
        worst, slowest = max(worst, growth), max(slowest, seconds)
        if not msg.startswith("Upload rejected") or growth > 100 or n_exceptions:
            bad.append(f"{name}: '{short(msg, 60)}' +{growth:.0f} MB")
    escaped = escape is not None and escape.exists()
    return not bad and not escaped, (f"{len(blobs) - len(bad)}/{len(blobs)} rejected, server RSS at most "
                                     f"+{worst:.0f} MB, at most {slowest:.1f} s"
                                     + (f"; written outside: {escape}" if escaped else "")
                                     + (f"; not: {'; '.join(bad)}" if bad else ""))


class JobsProbe:
    """Item 4, in two halves around the other app probes: a closed browser's queued job, and reloads vs the cap."""

    def __init__(self, app: App):
        self.app = app

    def start_training(self, page) -> str:
        page.get_by_role("tab", name="Train").click()
        epochs = page.get_by_role("spinbutton", name="Epochs")
        epochs.fill("200")
        epochs.press("Tab")
        page.get_by_role("button", name=re.compile(r"^Train on ")).click()
        return wait_text(page, r"Training…|Waiting for a free worker|Starting…|Cannot start", 60_000)

    def begin(self) -> None:
        """Browser Y starts a training (it takes the one worker); browser X queues one and closes."""
        self.y = self.app.context()
        self.ypage = self.y.new_page()
        self.app.open(self.ypage, "train_load")
        self.ypage.reload()
        settle(self.ypage)
        self.y_first = self.start_training(self.ypage)
        x = self.app.context()
        xpage = x.new_page()
        self.app.open(xpage, "train_load")
        xpage.reload()
        settle(xpage)
        self.x_msg = self.start_training(xpage)
        x.close()
        self.x_closed = time.monotonic()

    def attempt(self, page, page_name: str) -> str:
        """Reload, open `page_name` and try to start its job: 'started', 'refused' (the cap's message) or
        'disabled' (the page shows this browser's job in progress and offers no second start)."""
        page.reload()
        settle(page)
        page.locator("[data-testid='stSidebarNav'] a", has_text=page_name).first.click()
        settle(page)
        if page_name == "Train":
            page.get_by_role("tab", name="Train").click()
            button = page.get_by_role("button", name=re.compile(r"^Train on "))
        else:
            button = page.get_by_role("button", name="Run", exact=True)
        if button.is_disabled():
            return "disabled"
        if page_name == "Train":
            epochs = page.get_by_role("spinbutton", name="Epochs")
            epochs.fill("200")
            epochs.press("Tab")
        button.click()
        settle(page)
        return "refused" if page.get_by_text(re.compile("Cannot start")).count() else "started"

    def reload_cap(self) -> tuple[bool, str]:
        """Y (a training started) reloads and tries to start more: at most 2 jobs (the cap) across reloads."""
        page = self.ypage
        tries = [self.attempt(page, name) for name in ("Few-shot", "Train", "Few-shot")]
        page.reload()
        settle(page)
        side = page.locator("[data-testid='stSidebar']").inner_text()
        mine = re.search(r"Jobs of this browser: ([^\n]*)", side)
        n = len(mine.group(1).split(",")) if mine else 0
        return n == 2 and tries[0] == "started", (f"one browser, a training, then 3 reloads trying to start more: "
                                                  f"{tries}; jobs it holds: {n} (cap 2) — "
                                                  f"'{short(mine.group(0) if mine else None, 70)}'")

    def closed_and_operator(self) -> tuple[bool, str]:
        """X's queued job is cancelled once X is gone; the operator sees every job and stops Y's."""
        from ui.session_jobs import GONE_AFTER_S, SWEEP_EVERY_S

        wait = GONE_AFTER_S + SWEEP_EVERY_S + 5 - (time.monotonic() - self.x_closed)
        if wait > 0:
            time.sleep(wait)
        ctx = self.app.context()
        page = ctx.new_page()
        self.app.open(page, f"operator?operator={OPERATOR_TOKEN}")
        text = page.locator("[data-testid='stMain']").inner_text()
        swept = "stopped: owner gone" in text
        rows = re.findall(r"^(?:running|queued|done|cancelled|failed).*$", text, flags=re.M)
        stops = page.get_by_role("button", name="Stop", exact=True)
        n = stops.count()
        t = time.perf_counter()
        for _ in range(n):
            page.get_by_role("button", name="Stop", exact=True).first.click()
            settle(page)
        deadline, still = time.time() + 60, ["?"]
        while still and time.time() < deadline:  # a running job ends within its stop grace
            time.sleep(2)
            page.get_by_role("button", name="Refresh").click()
            settle(page)
            after = page.locator("[data-testid='stMain']").inner_text()
            still = re.findall(r"^(?:running|queued).*$", after, flags=re.M)  # a job row's status cell
        left = [line for line in after.splitlines() if line.strip()][:40] if still else []
        ctx.close()
        self.y.close()
        held = swept and n >= 1 and not still
        if left:
            print("item 4: the operator page after the stops:\n  " + "\n  ".join(left), flush=True)
        return held, (f"closed browser's queued job cancelled after {time.monotonic() - self.x_closed:.0f} s: "
                      f"{swept} (operator's list: {rows}); operator stopped {n} job(s), still running/queued: {still or 'none'} "
                      f"[{time.perf_counter() - t:.1f} s]")


# ------------------------------------------------------------------------------------------------ main

def warm_up() -> None:
    """Import what the commands import on their first call, here, once (each forked call would pay it again);
    refused calls only: no thread is started (checked), so forking stays safe."""
    import contextlib

    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread (it would be forked mid-whatever into every CLI call)
    missing = str(WORK / "missing")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for argv in ([*TRAIN_TINY, "--dataset", f"npz:{missing}.npz", "--out", missing],
                     [*FS_TINY, "--gen", "vae.batch_size=0", "--out", missing],
                     [*FS_TINY, "--dataset", f"npz:{missing}.npz", "--out", missing],
                     ["augment", "--dataset", "digits", "--shots", "2", "--method", "mixup", "--n", "3", "--param",
                      "nope=1", "--out", missing + ".npz"], ["info", missing]):
            try:
                core_main(argv)
            except SystemExit:
                pass
    if threading.active_count() != 1:
        raise RuntimeError(f"warm-up started threads: {threading.enumerate()}")


def core_main(argv):
    from core.__main__ import main

    return main(argv)


P1 = "item 1: upload claiming 3e9 parameters"
P2 = "item 2: train --out on a foreign folder / a file"
P3 = "item 3: half-saved generator on resume"
P4 = "item 4: job cap across reloads, closed browsers' jobs"
P5 = "item 5: two runs on one --out"
P6 = "item 6: decoder spec sent to the browser"
P7 = "item 7: decompression bombs (npz, gzip IDX), MemoryError"
P8 = "item 8: bad setting values (CLI and page)"
P9 = "item 9: augment --out existing file, bad --param"
P10A = "item 10a: --device nonsense, 'classic+'"
P10B = "item 10b: one-class IDX set, nan/inf in links"
P10C = "item 10c: run files' modes, app disk quota"
APP_PROBES = [P1, P4, P6, P10B, "held: hostile URLs", "held: hostile .npz uploaded", "held: zip bomb",
              "held: traversal"]
ORDER = [P1, P2, P3, P4, P5, P6, P7, P8, P9, P10A, P10B, P10C]


def main() -> int:
    import torch  # noqa: F401 - imported once here, shared by every forked CLI call

    import core.__main__  # noqa: F401
    from core.commands import augment, fewshot, info, train  # noqa: F401

    t_all = time.perf_counter()
    print(f"hostile probe: {WORK}", flush=True)
    warm_up()
    # ---- the CLI (forks: before any thread exists)
    run_probe("held: hostile .npz — pickles and objects", npz_group_probe, NPZ["pickles"])
    run_probe("held: hostile .npz — broken containers", npz_group_probe, NPZ["containers"])
    run_probe("held: hostile .npz — bad values", npz_group_probe, NPZ["values"])
    run_probe("held: hostile .npz — bad shapes and dtypes", npz_group_probe, NPZ["shapes"])
    run_probe("held: hostile checkpoint folders (CLI info)", probe_hostile_checkpoints)
    run_probe(P2, probe_train_out)
    run_probe(P3, probe_half_saved_generator)
    run_probe(P5, probe_two_writers)
    run_probe(P7, probe_bombs)
    run_part(P8, probe_setting_values_cli)
    run_probe(P9, probe_augment)
    run_probe(P10A, probe_device_and_combo)
    run_part(P10B, probe_one_class_idx)
    run_part(P10C, probe_file_modes)
    reference = WORK / "reference"
    if not ARGS.only or any(s in "held: kill -9" for s in ARGS.only):
        cli([*FS_KILL, "--out", str(reference)])
    run_probe("held: kill -9 of a run, then resume", probe_kill_run, reference)
    run_probe("held: kill -9 of a worker, then the run goes on", probe_kill_worker, reference)
    run_probe("held: kill -9 of a training (train --out)", probe_kill_training)
    # ---- threads from here on
    run_probe("held: Stop of a training within ~0.5-0.7 s", probe_stop_training)
    run_probe("held: Stop of a few-shot run", probe_stop_run)
    run_part(P8, probe_setting_values_page)
    run_part(P10C, probe_disk_quota)
    # ---- the real app
    if not ARGS.only or any(s in n for s in ARGS.only for n in APP_PROBES):
        app = App()
        try:
            run_probe(P1, probe_huge_claim_upload, app)
            run_probe(P6, probe_decoder_spec, app)
            run_part(P10B, probe_nan_link, app)
            run_probe("held: hostile URLs — numbers (huge, negative, malformed)", url_probe, app, [
                "interpolation?lam=1e308", "interpolation?lam=-5", "interpolation?i0=-1",
                "interpolation?i0=99999999999", "interpolation?i1=abc", "beta_dims?t=-1e300", "latent_map?grid=7",
                "latent_map?grid=-1", "interpolation?za=1e400,2"])
            other_sha = hashlib.sha256(b"someone else's").hexdigest()
            run_probe("held: hostile URLs — unknown keys and others' shas", url_probe, app, [
                "interpolation?foo=bar", f"interpolation?ckpt=upload:{other_sha}", f"?dataset=upload:{other_sha}",
                f"interpolation?ckpt=runs/{other_sha}", "latent_map?pins=raw:1,2:3;junk"])
            run_probe("held: hostile URLs — sizes (long values, many numbers)", url_probe, app, [
                "interpolation?ckpt=" + "x" * 5000, "?dataset=" + "y" * 5000, "interpolation?za=" + ",".join(["1"] * 600),
                "latent_map?pins=" + ";".join(["raw:1,2:" + ",".join(["0"] * 16)] * 40)])
            run_probe("held: hostile URLs — traversal paths", url_probe, app, [
                "interpolation?ckpt=../../../../etc/passwd", "interpolation?ckpt=runs/../../../etc",
                "?dataset=npz:/etc/passwd", "?dataset=idx:/proc/self", "?dataset=imagefolder:/",
                "?dataset=csv:/etc/passwd:0", "interpolation?ckpt=shipped/..%2F..%2Fcore"], ("root:x:0",))
            # item 4 from here: its training holds the one worker (pages that encode would wait for it); the uploads
            # below need no worker, and they fill most of the 150 s after which a closed browser's jobs go
            jobs = JobsProbe(app)
            began = run_probe(P4, lambda: (jobs.begin() or True, "began"), part=True) if \
                not ARGS.only or any(s in P4 for s in ARGS.only) else None
            if began is not None and not began[0]:
                PARTS.setdefault(P4, []).append(began)
            run_probe("held: hostile .npz uploaded on Your data", data_upload_probe, app, {
                "object.npz": NPZ["pickles"]["object-X-runs-code"].read_bytes(),
                "nan.npz": NPZ["values"]["nan-pixels"].read_bytes(),
                "liar.npz": NPZ["shapes"]["header-claims-1e12"].read_bytes()})
            run_probe("held: zip bomb in a data upload", data_upload_probe, app, {
                "bomb-images.zip": zip_with(PETS, big=("pets/cat/huge.png", 600 << 20)),
                "bomb-npz.npz": zip_with([("y.npy", npy_bytes(np.arange(10)))], big=("X.npy", 600 << 20))})
            run_probe("held: traversal members in a data upload", data_upload_probe, app, {
                "traversal.zip": zip_with(PETS + [("../../../../tmp/hostile-probe-escape/x.png", png(99))]),
                "absolute.zip": zip_with(PETS + [("/tmp/hostile-probe-escape/y.png", png(98))])})
            from safetensors.torch import save as st_save

            small = {"kind": "ae", "input_shape": [1, 28, 28], "hidden": 16, "latent_dim": 2, "arch": "mlp"}
            run_probe("held: zip bomb in a checkpoint upload", checkpoint_upload_probe, app, {
                "bomb-config.zip": zip_with([("x/model.safetensors", st_save({}))], big=("x/config.json", 600 << 20)),
                "bomb-weights.zip": zip_with([("x/config.json", json.dumps({"format_version": 1,
                                                                           "model": small}).encode())],
                                             big=("x/model.safetensors", 600 << 20))})
            escape = Path("/tmp/hostile-probe-escape")
            run_probe("held: traversal members in a checkpoint upload", checkpoint_upload_probe, app, {
                "traversal-ckpt.zip": checkpoint_zip(small, st_save({}),
                                                     prefix="../../../../tmp/hostile-probe-escape/"),
                "absolute-ckpt.zip": checkpoint_zip(small, st_save({}), prefix="/tmp/hostile-probe-escape/")}, escape)
            if began is not None and began[0]:
                run_part(P4, jobs.reload_cap)
                run_part(P4, jobs.closed_and_operator)
        finally:
            app.close()
    for name in ORDER:
        report_parts(name)
    held = sum(1 for _, h, _ in RESULTS if h)
    print("\n".join(f"{'HELD  ' if h else 'FAILED'}  {n}" for n, h, _ in sorted(RESULTS, key=lambda r: r[0])))
    print(f"held {held}/{len(RESULTS) if ARGS.only else TOTAL}  ({time.perf_counter() - t_all:.0f} s)", flush=True)
    return 0 if held == (len(RESULTS) if ARGS.only else TOTAL) else 1


def cleanup() -> None:
    for p in _started:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                p.kill()
            p.wait()
    if not ARGS.keep:
        shutil.rmtree(WORK, ignore_errors=True)
        shutil.rmtree("/tmp/hostile-probe-escape", ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="run only probes whose name holds one of these")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (for a look at what was left)")
    ARGS = parser.parse_args()
    NPZ = hostile_npz(WORK / "npz")
    try:
        sys.exit(main())
    finally:
        cleanup()
