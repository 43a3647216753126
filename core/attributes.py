"""Attribute vectors in latent space (Latent Space Cartography, Liu, Jun, Li & Heer, EuroVis 2019).

Two groups of codes A and B (two classes, or two selections on the map) define an attribute
vector v = mean(z_A) - mean(z_B) (d,). With it:

- custom_projection: each code's coordinate along v_hat = v / |v| (uncentred, so moving a code by
  t * v moves it by t * |v| on this axis) against the first principal direction of what is left
  after removing v_hat (the residual's largest spread, centred, sign fixed like core.projection's
  PCA: largest loading positive);
- separation_auc: how well v separates A from B, as the ROC AUC of the scores z @ v_hat (1 = every
  A code beyond every B code; 0.5 = no separation). The point estimate uses the v of the same
  codes (in-sample, as the paper does); bootstrap_attribute's interval redraws A and B with
  replacement and recomputes v on each draw, so it includes the uncertainty of v itself;
- bootstrap_attribute also gives the stability of v's direction: the cosine between each
  bootstrap v and v (1 = the direction does not depend on which codes were drawn);
- bootstrap_vectors: the v of the first bootstrap draws (to decode the uncertainty of an analogy);
- apply_vector: z + t * v, the analogy slider; analogy_job: how often class b + (a - b) is called a by a
  classifier trained on the real images (a worker job: it decodes and classifies a whole class);
- AttributeVector: a named vector with its provenance, kept as a small JSON (vectors_to_json /
  vectors_from_json round-trip exactly: floats are written with repr).

Randomness: a seed argument turned into one numpy Generator; nothing touches the global RNG.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["attribute_vector", "custom_projection", "separation_auc", "bootstrap_attribute", "bootstrap_vectors",
           "apply_vector", "analogy_job", "AttributeVector", "vectors_to_json", "vectors_from_json", "JSON_FORMAT"]

JSON_FORMAT = 1


def _codes(z) -> np.ndarray:
    from core.projection import _as_array

    return _as_array(z, np.float64)


def _groups(z: np.ndarray, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays of A and B (integer indices or boolean masks over z's rows), checked."""
    out = []
    for name, idx in (("A", a), ("B", b)):
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (len(z),):
                raise ValueError(f"the mask of {name} must have one entry per code ({len(z)}), got shape {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.reshape(-1)
        if len(idx) == 0:
            raise ValueError(f"group {name} is empty; select at least one code for it")
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"group {name} must be integer row indices or a boolean mask, got {idx.dtype}")
        if idx.min() < -len(z) or idx.max() >= len(z):
            raise ValueError(f"group {name} has indices outside 0..{len(z) - 1}")
        idx = np.unique(idx % len(z))
        out.append(idx)
    if np.intersect1d(out[0], out[1]).size:
        raise ValueError(f"groups A and B share {np.intersect1d(out[0], out[1]).size} codes; "
                         "choose two disjoint selections (or two different classes)")
    return out[0], out[1]


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    if not norm > 0:
        raise ValueError("the attribute vector is zero (A and B have the same mean); choose groups that differ")
    return v / norm


def attribute_vector(z, a, b) -> np.ndarray:
    """v = mean(z[a]) - mean(z[b]) -> (d,) float64; a, b: row indices or boolean masks, disjoint."""
    z = _codes(z)  # (N, d)
    a, b = _groups(z, a, b)
    return z[a].mean(0) - z[b].mean(0)


def custom_projection(z, v) -> tuple[np.ndarray, np.ndarray]:
    """Codes z (N, d) -> (xy (N, 2), axes (2, d)): x = z @ v_hat, y = the centred residual
    z - (z @ v_hat) v_hat along its first principal direction u; axes = [v_hat, u], orthonormal
    (u = 0 when nothing is left, e.g. d = 1)."""
    z = _codes(z)
    v_hat = _unit(np.asarray(v, np.float64).reshape(-1))
    if v_hat.shape != (z.shape[1],):
        raise ValueError(f"the vector has {v_hat.size} entries but the codes have {z.shape[1]}; "
                         "use a vector made in this model's latent space")
    x = z @ v_hat  # (N,)
    resid = z - np.outer(x, v_hat)  # (N, d), every row orthogonal to v_hat
    resid -= resid.mean(0)
    evals, evecs = np.linalg.eigh(resid.T @ resid)  # ascending
    u = evecs[:, -1]  # (d,)
    if evals[-1] <= 1e-12 * max(1.0, float(evals.sum())):
        u = np.zeros_like(u)
    else:
        u = u - (u @ v_hat) * v_hat  # exact orthogonality (eigh leaves ~1e-16 of v_hat)
        u /= np.linalg.norm(u)
        u *= np.sign(u[np.abs(u).argmax()])
    return np.stack([x, resid @ u], 1), np.stack([v_hat, u])


def _auc(scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """ROC AUC of A against B as the Mann-Whitney U statistic over na * nb (average ranks: ties count half) --
    the value sklearn's roc_auc_score gives (tests/test_attributes.py), without its per-call checks, which made
    a 200-draw bootstrap over 5k codes ~0.6-0.9 s."""
    from scipy.stats import rankdata

    na, nb = len(scores_a), len(scores_b)
    ranks_a = rankdata(np.r_[scores_a, scores_b])[:na]
    return float((ranks_a.sum() - na * (na + 1) / 2) / (na * nb))


def separation_auc(z, a, b, v=None) -> float:
    """ROC AUC of A (positive) against B along v (default: their own attribute vector): the share
    of (A, B) pairs whose A code lies farther along v_hat, ties counted half."""
    z = _codes(z)
    a, b = _groups(z, a, b)
    v_hat = _unit(z[a].mean(0) - z[b].mean(0) if v is None else np.asarray(v, np.float64).reshape(-1))
    return _auc(z[a] @ v_hat, z[b] @ v_hat)


def bootstrap_attribute(z, a, b, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> dict:
    """The attribute vector A - B with its uncertainty, as a plain dict:

    auc, auc_low, auc_high              separation along v (in-sample) and the bootstrap interval
    cosine_mean, cosine_low, cosine_high  cosine between bootstrap v's and v: the direction's stability
    norm                                |v|
    n_a, n_b, n_boot, seed, level       what was drawn

    Each of the n_boot draws resamples A and B separately with replacement (sizes kept), recomputes
    v on the draw and scores the drawn codes along it. Intervals: the (1 - level)/2 and
    (1 + level)/2 percentiles of the draws. One numpy Generator from `seed`: same seed, same dict."""
    if int(n_boot) < 2:
        raise ValueError(f"n_boot must be >= 2 bootstrap draws, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95, got {level}")
    z = _codes(z)
    a, b = _groups(z, a, b)
    za, zb = z[a], z[b]  # (Na, d), (Nb, d)
    v = za.mean(0) - zb.mean(0)
    v_hat = _unit(v)
    rng = np.random.default_rng(int(seed))
    aucs, cosines = np.empty(int(n_boot)), np.empty(int(n_boot))
    for i in range(int(n_boot)):
        da, db = za[rng.integers(len(za), size=len(za))], zb[rng.integers(len(zb), size=len(zb))]
        vb = da.mean(0) - db.mean(0)  # (d,)
        nb = float(np.linalg.norm(vb))
        if nb == 0:  # a degenerate draw (e.g. one code per group, drawn identical): no direction
            aucs[i], cosines[i] = 0.5, 0.0
            continue
        aucs[i] = _auc(da @ (vb / nb), db @ (vb / nb))
        cosines[i] = float(vb @ v_hat) / nb
    q = [50 * (1 - level), 50 * (1 + level)]
    auc_low, auc_high = np.percentile(aucs, q)
    cos_low, cos_high = np.percentile(cosines, q)
    return {"auc": _auc(za @ v_hat, zb @ v_hat), "auc_low": float(auc_low), "auc_high": float(auc_high),
            "cosine_mean": float(cosines.mean()), "cosine_low": float(cos_low), "cosine_high": float(cos_high),
            "norm": float(np.linalg.norm(v)), "n_a": int(len(a)), "n_b": int(len(b)), "n_boot": int(n_boot),
            "seed": int(seed), "level": float(level)}


def bootstrap_vectors(z, a, b, n: int, seed: int = 0) -> np.ndarray:
    """The attribute vectors of the first n bootstrap draws -> (n, d) float64: row i is the v that
    bootstrap_attribute(z, a, b, n_boot, seed) computes on its draw i (same seed, same resampling order),
    so decoding z + t * row shows what the interval's uncertainty looks like in pixels."""
    if int(n) < 1:
        raise ValueError(f"n must be >= 1 bootstrap vectors, got {n}")
    z = _codes(z)
    a, b = _groups(z, a, b)
    za, zb = z[a], z[b]  # (Na, d), (Nb, d)
    rng = np.random.default_rng(int(seed))
    out = np.empty((int(n), z.shape[1]))
    for i in range(int(n)):  # the draws in bootstrap_attribute's order: A's rows, then B's
        da, db = za[rng.integers(len(za), size=len(za))], zb[rng.integers(len(zb), size=len(zb))]
        out[i] = da.mean(0) - db.mean(0)
    return out


def apply_vector(z, v, t) -> np.ndarray:
    """z + t * v: z (d,) or (M, d), v (d,), t a number or (T,) -> z's shape, or (T, d) for one code
    and T steps (the slider's path), or (M, d) for M codes and M steps (one t per code)."""
    z = np.asarray(z, np.float64)
    v = np.asarray(v, np.float64).reshape(-1)
    if z.shape[-1] != v.size:
        raise ValueError(f"the vector has {v.size} entries but the code has {z.shape[-1]}; "
                         "use a vector made in this model's latent space")
    t = np.asarray(t, np.float64)
    if t.ndim == 0:
        return z + float(t) * v
    if t.ndim != 1 or (z.ndim == 2 and len(z) != len(t)):
        raise ValueError(f"t must be a number or (T,) steps matching the {len(z) if z.ndim == 2 else 1} code(s)")
    return z + t[:, None] * v  # (T, d)


def analogy_job(checkpoint, dataset: str, a: int, b: int, t: float = 1.0, feature_seed: int = 0) -> dict:
    """Does the analogy work? Every code of class b moved by t * v (v = mean(z of class a) - mean(z of class b)),
    decoded, and classified by a CNN trained on the real images (core.sample_quality.feature_classifier, the
    sampler table's classifier). An executor job from plain arguments (a worker process): `checkpoint` a
    checkpoint folder or a zipped checkpoint's bytes, `dataset` a core.data spec the model reads.

    -> {"to_a": share of the moved b samples called a, "still_b": share still called b, "recon_b": share of the
    b samples' plain reconstructions called b (what the decoder manages without any move), "n": samples, "t"}."""
    import torch

    from core.checkpoints import load_checkpoint, load_checkpoint_zip
    from core.data import load_dataset
    from core.latent import decode_latents, encode_dataset
    from core.sample_quality import feature_classifier

    load = load_checkpoint_zip if isinstance(checkpoint, (bytes, bytearray)) else load_checkpoint
    model = load(checkpoint, device="cpu").model
    data = load_dataset(dataset)
    y = data.y.numpy()
    z = encode_dataset(model, data.x).numpy()  # (N, d)
    v = attribute_vector(z, y == a, y == b)
    z_b = z[y == b]  # (Nb, d)
    moved = decode_latents(model, torch.as_tensor(apply_vector(z_b, v, float(t)), dtype=torch.float32))
    recon = decode_latents(model, torch.as_tensor(z_b))
    net = feature_classifier(data, seed=feature_seed)
    with torch.no_grad():
        called_moved = torch.cat([net(x).argmax(1) for x in moved.split(500)]).numpy()
        called_recon = torch.cat([net(x).argmax(1) for x in recon.split(500)]).numpy()
    return {"to_a": float(np.mean(called_moved == a)), "still_b": float(np.mean(called_moved == b)),
            "recon_b": float(np.mean(called_recon == b)), "n": int(len(z_b)), "t": float(t)}


# ----------------------------------------------------------------------------- named vectors, JSON

@dataclass(frozen=True)
class AttributeVector:
    """A named attribute vector of one model's latent space, with where it came from.

    vector: v (d,) as a tuple of floats; a_label / b_label: what A and B were ("class 7", "map
    selection 1"); model: which model's space (a checkpoint name / sha) - a vector means nothing
    in another model's codes; stats: bootstrap_attribute's dict (optional)."""

    name: str
    vector: tuple[float, ...]
    a_label: str = "A"
    b_label: str = "B"
    model: str = ""
    stats: dict = field(default_factory=dict, hash=False)  # hash by name and vector: a dict cannot be hashed

    def __post_init__(self):
        if not str(self.name).strip():
            raise ValueError("an attribute vector needs a non-empty name")
        vec = tuple(float(x) for x in np.asarray(self.vector, np.float64).reshape(-1))
        if not vec or not all(math.isfinite(x) for x in vec):
            raise ValueError("an attribute vector must be a non-empty list of finite numbers")
        object.__setattr__(self, "vector", vec)
        object.__setattr__(self, "stats", dict(self.stats))

    @property
    def dim(self) -> int:
        return len(self.vector)

    @property
    def norm(self) -> float:
        """|v|: how far apart the means of A and B lie."""
        return float(np.linalg.norm(self.vector))

    @classmethod
    def from_groups(cls, name: str, z, a, b, a_label: str = "A", b_label: str = "B", model: str = "",
                    n_boot: int = 200, seed: int = 0) -> "AttributeVector":
        """v = mean(z[a]) - mean(z[b]) with its bootstrap stats (n_boot=0: none)."""
        stats = bootstrap_attribute(z, a, b, n_boot, seed) if n_boot else {}
        return cls(name, tuple(attribute_vector(z, a, b)), a_label, b_label, model, stats)

    def to_dict(self) -> dict:
        return {**asdict(self), "vector": list(self.vector)}

    @classmethod
    def from_dict(cls, d: dict) -> "AttributeVector":
        if not isinstance(d, dict) or "name" not in d or "vector" not in d:
            raise ValueError("an attribute vector entry needs at least 'name' and 'vector'")
        known = {"name", "vector", "a_label", "b_label", "model", "stats"}
        return cls(**{k: v for k, v in d.items() if k in known})


def vectors_to_json(vectors) -> str:
    """Named vectors -> a small JSON document ({"format": 1, "vectors": [...]}); floats by repr, exact."""
    return json.dumps({"format": JSON_FORMAT, "vectors": [v.to_dict() for v in vectors]})


def vectors_from_json(text: str | bytes) -> list[AttributeVector]:
    """The inverse of vectors_to_json; ValueError naming what is wrong with a damaged or foreign file."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"not an attribute-vector JSON file: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT or not isinstance(doc.get("vectors"), list):
        raise ValueError(f"not an attribute-vector file of format {JSON_FORMAT}: expected "
                         "{\"format\": 1, \"vectors\": [...]} as written by vectors_to_json")
    vectors = [AttributeVector.from_dict(d) for d in doc["vectors"]]
    names = [v.name for v in vectors]
    if len(set(names)) != len(names):
        raise ValueError("the file names two vectors the same; rename one before loading")
    return vectors
