"""The Attribute vectors page's calls into core.attributes, cached at the UI edge, and its own state:
named groups and vectors kept in the session, and the current vector in the URL.

Groups A and B are two classes or two saved map selections (a frozen, hashable `Groups`). The vector,
its in-sample AUC and the custom projection are computed inline (milliseconds for 5k codes). The
bootstrap (200 redraws, measured 0.6-0.85 s for 5k codes on the 2-core box) runs as a shared job in a worker
process (ui.background), so the page draws at once and the interval follows; so does the analogy check
(every B code + v, decoded and classified). The page's section 5, samplers against the holes for the sidebar's
checkpoint (issue 14, item 4, for a checkpoint that is not shipped), is drawn here too (samplers_panel).

URL keys (validated; bad values are ignored with a message, once per session):
  attr=A,B     the current vector is mean(class A) - mean(class B), class indices (e.g. attr=7,1)
  attrv=x,...  the current vector's numbers (float32-exact decimals), for one not made from two classes
  attrn=NAME   its name (with attrv)
  attrt=T      the t of "z + t·v"
The sample moved by t·v is the shared i0 (ui.state).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import streamlit as st

from ui import background
from ui.resources import ModelRef, checkpoint, dataset, latents

N_BOOT = 200  # bootstrap redraws behind every interval
SEED = 0
N_DRAWS = 4  # bootstrap vectors decoded beside z + t·v: what the interval looks like in pixels
T_RANGE = (-2.0, 2.0)
MAX_JSON_BYTES = 1 << 20  # an attribute-vector file is a few KB; refuse anything near a megabyte

VECTORS = "_ll_attr_vectors"  # [AttributeVector], unique names, in the order kept
GROUPS = "_ll_attr_groups"  # {"dataset": spec, "groups": {name: [index, ...]}}
URL_CLASSES, URL_VECTOR, URL_NAME, URL_T = "attr", "attrv", "attrn", "attrt"
_URL_SEEDED = "_ll_attr_url_seeded"
MAX_URL_CHARS = 2000


@dataclass(frozen=True)
class Groups:
    """A and B: kind "classes" (a, b hold one class id each) or "indices" (dataset rows)."""

    kind: str
    a: tuple[int, ...]
    b: tuple[int, ...]
    a_label: str
    b_label: str

    @property
    def digest(self) -> str:
        """Short key of the rows (a job key must not carry 5,000 indices)."""
        return hashlib.sha256(repr((self.kind, self.a, self.b)).encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"{self.a_label} − {self.b_label}"


def class_groups(spec: str, ia: int, ib: int) -> Groups:
    names = list(dataset(spec).class_names)
    return Groups("classes", (int(ia),), (int(ib),), f"class {names[ia]}", f"class {names[ib]}")


def group_rows(spec: str, groups: Groups) -> tuple[np.ndarray, np.ndarray]:
    """-> (rows of A, rows of B) as int64 arrays."""
    if groups.kind == "classes":
        y = dataset(spec).y.numpy()
        return np.flatnonzero(y == groups.a[0]), np.flatnonzero(y == groups.b[0])
    return np.asarray(groups.a, np.int64), np.asarray(groups.b, np.int64)


# ----------------------------------------------------------------------------- cached maths

@st.cache_data(max_entries=32, show_spinner=False)
def summary(ref: ModelRef, spec: str, groups: Groups) -> dict:
    """v, its length, the in-sample AUC and where the means of A and B lie along v_hat.
    -> {"v" (d,), "norm", "auc", "n_a", "n_b", "x_a", "x_b"}."""
    from core.attributes import attribute_vector, separation_auc

    z = latents(ref, spec)
    a, b = group_rows(spec, groups)
    v = attribute_vector(z, a, b)
    v_hat = v / np.linalg.norm(v)
    z64 = z.astype(np.float64)
    return {"v": v, "norm": float(np.linalg.norm(v)), "auc": separation_auc(z, a, b), "n_a": len(a), "n_b": len(b),
            "x_a": float(z64[a].mean(0) @ v_hat), "x_b": float(z64[b].mean(0) @ v_hat)}


@st.cache_data(max_entries=16, show_spinner=False)
def projection(ref: ModelRef, spec: str, v: tuple[float, ...]) -> np.ndarray:
    """core.attributes.custom_projection of every code -> xy (N, 2): along v_hat, residual's first PC."""
    from core.attributes import custom_projection

    xy, _ = custom_projection(latents(ref, spec), np.asarray(v))
    return xy


def bootstrap_job(ref: ModelRef, spec: str, groups: Groups):
    """The shared job running core.attributes.bootstrap_attribute (N_BOOT redraws, SEED) in a worker."""
    from core.attributes import bootstrap_attribute

    a, b = group_rows(spec, groups)
    return background.submit("attribute-bootstrap", (ref.sha256, spec, groups.digest, N_BOOT, SEED),
                             bootstrap_attribute, {"z": latents(ref, spec), "a": a, "b": b,
                                                   "n_boot": N_BOOT, "seed": SEED}, urgent=True)


def analogy_job(ref: ModelRef, spec: str, groups: Groups):
    """The shared job running core.attributes.analogy_job (class B + (A − B), decoded and classified) in a worker;
    None for groups that are not two classes (a classifier names classes, not selections)."""
    from core.attributes import analogy_job as job_fn
    from ui.resources import model_source

    if groups.kind != "classes":
        return None
    a, b = groups.a[0], groups.b[0]
    return background.submit("analogy", (ref.sha256, spec, a, b, 1.0), job_fn,
                             {"checkpoint": model_source(ref), "dataset": spec, "a": a, "b": b, "t": 1.0})


@st.cache_data(max_entries=16, show_spinner=False)
def draws(ref: ModelRef, spec: str, groups: Groups, n: int = N_DRAWS) -> np.ndarray:
    """The vectors of the first n bootstrap draws (the same draws as the interval's) -> (n, d)."""
    from core.attributes import bootstrap_vectors

    a, b = group_rows(spec, groups)
    return bootstrap_vectors(latents(ref, spec), a, b, n, SEED)


@st.cache_data(max_entries=32, show_spinner=False)
def moved(ref: ModelRef, spec: str, index: int, vectors: tuple[tuple[float, ...], ...], t: float) -> dict:
    """Decode z_index + t * v for each v (the vector first, then bootstrap draws) on the server.
    -> {"x" (V, *shape), "spread": mean |pixel difference| of the draws' decodes from the first (None if none),
    "spread_max"}."""
    import torch

    from core.attributes import apply_vector
    from core.latent import decode_latents

    z = latents(ref, spec)[int(index)]
    codes = np.stack([apply_vector(z, np.asarray(v), float(t)) for v in vectors])  # (V, d)
    x = decode_latents(checkpoint(ref.key).model, torch.as_tensor(codes, dtype=torch.float32)).numpy()
    diff = np.abs(x[1:] - x[:1]) if len(x) > 1 else None
    return {"x": x, "spread": None if diff is None else float(diff.mean()),
            "spread_max": None if diff is None else float(diff.max())}


# ----------------------------------------------------------------------------- samplers against the holes

SAMPLER_DATASET = "mnist5k"  # the sampler table's setting: held-out images are the official MNIST test set


def sampler_job(ref: ModelRef, spec: str, seeds: int, n: int, start: bool = False):
    """The shared job measuring core.sampler_table's samplers (prior, ex-post, kNN) for one checkpoint in a
    worker process (~25 s per seed for n = 2,000 on the 2-core box) -> its handle, or None when it was never
    started and start is False (the page starts it only on a button press)."""
    from core.sampler_table import sampler_records_job
    from ui.resources import model_source

    key = (ref.sha256, spec, int(seeds), int(n))
    if not start:
        return background.peek("samplers", key)
    return background.submit("samplers", key, sampler_records_job,
                             {"checkpoint": model_source(ref), "seeds": int(seeds), "n": int(n)})


def sampler_markdown(records: list[dict]) -> str:
    """Records -> the same markdown table as docs/results.md (mean [95 % t-interval over the seeds])."""
    from core.sampler_table import format_table, summarise

    return format_table(summarise(records))


# ----------------------------------------------------------------------------- the samplers panel (drawn on the page)

def samplers_panel(ref: ModelRef, spec: str, trained_on: str | None) -> None:
    """Section 5 of the Attribute vectors page: the samplers-against-the-holes figures of the sidebar's checkpoint,
    committed (shipped) or measured on request in a worker process (a non-shipped mnist5k checkpoint)."""
    st.subheader("5 · Samplers against the holes, for this checkpoint")
    with st.expander("How well do prior, ex-post and kNN samples of this model avoid its holes?"):
        from ui.maps import sampler_table

        shipped = ref.key.startswith("shipped/") and spec == SAMPLER_DATASET
        committed = sampler_table((ref.key.split("/", 1)[1],)) if shipped else None
        if committed:
            st.markdown("Measured offline for this shipped checkpoint (`docs/records/samplers.csv`, "
                        "`python -m core samplers`; the Latent map page shows several models side by side):")
            st.markdown(committed)
        elif trained_on != SAMPLER_DATASET or spec != SAMPLER_DATASET:
            st.caption(f"The figures compare samples with held-out MNIST test images, so they are measured for checkpoints "
                       f"trained on {SAMPLER_DATASET} only; this one was trained on {trained_on}.")
        else:
            st.markdown(
                "Each sampler draws codes, which are decoded and scored like the shipped models in `docs/results.md`: "
                "**hole share** (codes farther from every training code than 95 % of training codes are from their "
                "nearest neighbour), a real-image classifier's **confidence**, a **Fréchet distance in the features of a "
                "small CNN trained on mnist5k** (not Inception-FID, not comparable to published FIDs), and "
                "**precision / recall** in the same features; mean [95 % interval over the sampling seeds].")
            c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
            seeds = c1.select_slider("Sampling seeds", [2, 3, 5], value=3, key="w_attr_s_seeds")
            count = c2.select_slider("Samples per seed", [500, 1000, 2000], value=2000, key="w_attr_s_n")
            job = sampler_job(ref, spec, seeds, count)
            if c3.button("Measure in a worker process", key="w_attr_s_run", disabled=job is not None and not job.done,
                         help="About 25 s per seed at 2,000 samples on a 2-core CPU; the page stays usable."):
                try:
                    job = sampler_job(ref, spec, seeds, count, start=True)
                except ValueError as e:  # QueueFull: the message says when to try again
                    st.error(f"Could not start the measurement: {e}")
            if job is not None and job.status == "done":
                st.markdown(sampler_markdown(job.result()))
            elif job is not None and job.error_class:
                st.error(f"The measurement failed: {job.error_text.splitlines()[0]}")
            elif job is not None:
                def _poll_samplers() -> None:
                    if job.done:
                        st.rerun(scope="app")
                    place = job.queue_position
                    st.info(f"Measuring in a worker process ({f'place {place} in the queue' if place else 'running'})…",
                            icon=":material/hourglass_top:")

                st.fragment(_poll_samplers, run_every=2.0)()


# ----------------------------------------------------------------------------- session store

def saved_vectors() -> list:
    return list(st.session_state.get(VECTORS) or [])


def keep_vector(vector) -> bool:
    """Add or replace (same name) a vector; -> True when one of that name was replaced."""
    kept = saved_vectors()
    replaced = any(v.name == vector.name for v in kept)
    st.session_state[VECTORS] = [v for v in kept if v.name != vector.name] + [vector]
    return replaced


def forget_vector(name: str) -> None:
    st.session_state[VECTORS] = [v for v in saved_vectors() if v.name != name]


def _free_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name} ({k})" in taken:
        k += 1
    return f"{name} ({k})"


def load_vectors(data: bytes, d: int) -> list[str]:
    """Add the vectors of an uploaded JSON file (core.attributes.vectors_to_json format) to the session.

    All or nothing: ValueError with a message for the user (bad JSON, another format, another latent size)
    and the session's vectors untouched. A name already kept gets a " (2)" suffix. -> the names added."""
    from core.attributes import vectors_from_json

    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"the file is {len(data) / 2**20:.1f} MB; an attribute-vector file is a few KB")
    loaded = vectors_from_json(data)
    if not loaded:
        raise ValueError("the file holds no vectors")
    wrong = [f"{v.name!r} (d = {v.dim})" for v in loaded if v.dim != d]
    if wrong:
        raise ValueError(f"this model's codes have d = {d} entries, but {', '.join(wrong[:5])}"
                         f"{' …' if len(wrong) > 5 else ''} do not: load vectors made with a model of the same "
                         "latent size. Nothing was loaded.")
    from dataclasses import replace

    kept = saved_vectors()
    taken = {v.name for v in kept}
    added = []
    for v in loaded:
        v = replace(v, name=_free_name(v.name, taken))
        taken.add(v.name)
        added.append(v)
    st.session_state[VECTORS] = kept + added
    return [v.name for v in added]


def saved_groups(spec: str) -> dict[str, list[int]]:
    """This dataset's saved map selections (they are rows of the dataset they were picked in)."""
    store = st.session_state.get(GROUPS) or {}
    return dict(store.get("groups") or {}) if store.get("dataset") == spec else {}


def save_group(spec: str, name: str, rows: list[int]) -> None:
    groups = saved_groups(spec)
    groups[name] = sorted({int(i) for i in rows})
    st.session_state[GROUPS] = {"dataset": spec, "groups": groups}


# ----------------------------------------------------------------------------- URL

def float_text(x: float) -> str:
    """float32-exact decimal (9 significant digits at most)."""
    return f"{float(np.float32(x)):.9g}"


def read_url(n_classes: int, d: int) -> tuple[dict, list[str]]:
    """The page's URL keys, validated -> ({"classes": (a, b)} | {"vector": (d,), "name": str} | {}, plus "t"),
    and what was ignored (one line per bad key)."""
    q, out, bad = st.query_params, {}, []
    raw = q.get(URL_CLASSES)
    if raw is not None:
        try:
            a, b = (int(p) for p in raw.split(","))
            if not (0 <= a < n_classes and 0 <= b < n_classes and a != b):
                raise ValueError
            out["classes"] = (a, b)
        except ValueError:
            bad.append(f"{URL_CLASSES} (two different class numbers 0–{n_classes - 1}, like 7,1)")
    raw = q.get(URL_VECTOR)
    if raw is not None and "classes" not in out:
        try:
            if len(raw) > MAX_URL_CHARS:
                raise ValueError
            v = np.array([float(p) for p in raw.split(",")])
            if v.shape != (d,) or not np.isfinite(v).all() or not np.abs(v).max() > 0:
                raise ValueError
            name = str(q.get(URL_NAME) or "from a link").strip()[:80] or "from a link"
            out.update(vector=v, name=name)
        except ValueError:
            bad.append(f"{URL_VECTOR} ({d} finite numbers, not all zero, for this model's latent size)")
    raw = q.get(URL_T)
    if raw is not None:
        try:
            t = float(raw)
            if not (math.isfinite(t) and T_RANGE[0] <= t <= T_RANGE[1]):
                raise ValueError
            out["t"] = round(t * 20) / 20  # the sliders' 0.05 grid
        except ValueError:
            bad.append(f"{URL_T} (a number from {T_RANGE[0]:g} to {T_RANGE[1]:g})")
    return out, bad


def url_once(n_classes: int, d: int) -> tuple[dict, list[str]]:
    """read_url on the first run of this page in the session, else ({}, [])."""
    if st.session_state.get(_URL_SEEDED):
        return {}, []
    st.session_state[_URL_SEEDED] = True
    return read_url(n_classes, d)


def write_url(classes: tuple[int, int] | None = None, vector=None, name: str | None = None,
              t: float | None = None) -> None:
    """The current vector (two classes, or its numbers and name) and t, into the address bar."""
    want = {URL_CLASSES: None, URL_VECTOR: None, URL_NAME: None, URL_T: None}
    if classes is not None:
        want[URL_CLASSES] = f"{classes[0]},{classes[1]}"
    elif vector is not None:
        text = ",".join(float_text(x) for x in np.asarray(vector).reshape(-1))
        if len(text) <= MAX_URL_CHARS:
            want[URL_VECTOR], want[URL_NAME] = text, name
    if t is not None:
        want[URL_T] = f"{t:g}"
    for k, v in want.items():
        if v is None:
            if k in st.query_params:
                del st.query_params[k]
        elif st.query_params.get(k) != v:
            st.query_params[k] = v
