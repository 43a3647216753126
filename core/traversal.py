"""Per-dimension views of a latent space (seed 002: beta-VAE, "Einfluss des beta-Faktors").

- kl_per_dim: a VAE's KL(q(z|x) || N(0, I)) split by latent dimension, averaged over the data —
  how many nats each dimension carries. A beta-VAE with a large beta switches dimensions off
  (KL ~ 0: the decoder ignores them), which is why the KL of a model falls as beta grows.
- code_variance: the variance of the codes (VAE: the means mu) per dimension over the data — the
  activity measure for an AE or AAE, which have no posterior to take a KL of.
- dimension_scores / dimension_order: one of the two, and the dimensions sorted by it, largest first.
- traversal_grid: decode a chosen sample's code with one dimension moved at a time, from -3 to
  +3 sigma (rows = dimensions, columns = offsets), all in one batch.
- traversal_directions / traversal_column: the grid's moves as directions sigma_d * e_d, and one column
  of it at any offset t (the live slider; the browser decodes the same z0 + t * direction).

Sigma convention (one for every model kind): sigma_j is the standard deviation of dimension j's
codes over the data (VAE: of the means mu), not the prior's 1. The grid then spans the region the
data actually occupies in that dimension, so an AE, an AAE and a VAE compare on equal terms; a
dimension a beta-VAE switched off has sigma ~ 0 and its row stays the same image, which is the
point to see.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from core.latent import _batched, decode_latents, encode_dataset

__all__ = [
    "kl_per_dim",
    "code_variance",
    "dimension_scores",
    "dimension_order",
    "beta_summary",
    "TraversalGrid",
    "traversal_grid",
    "traversal_directions",
    "traversal_column",
]

SCORES = ("kl", "variance")


def _has_posterior(model) -> bool:
    return hasattr(model, "encode_dist")


def _x(x) -> Tensor:
    x = getattr(x, "x", x)  # a core.data.Dataset or a tensor
    return x if isinstance(x, Tensor) else torch.as_tensor(x)


def _posterior(model, x, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """x (N, ...) -> mu (N, d), logvar (N, d) on the CPU, by core.latent's batched eval-mode loop."""
    d = model.latent_dim
    both = _batched(model, lambda xb: torch.cat(model.encode_dist(xb), dim=1), _x(x), batch_size)  # (N, 2d)
    both = both.reshape(-1, 2 * d)
    return both[:, :d], both[:, d:]


def kl_per_dim(model, x, batch_size: int = 1024) -> Tensor:
    """A VAE's per-dimension KL(N(mu, sigma^2) || N(0, 1)) averaged over the rows of x -> (d,) in
    nats. Their sum is the KL term of the VAE's loss (at beta = 1) on this data."""
    if not _has_posterior(model):
        raise ValueError(f"a KL per dimension needs a VAE; this model ({type(model).__name__}) has no posterior "
                         "q(z|x). Order its dimensions by code variance instead.")
    return _kl(*_posterior(model, x, batch_size))


def _kl(mu: Tensor, logvar: Tensor) -> Tensor:
    if len(mu) == 0:
        raise ValueError("a KL per dimension needs at least one sample")
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # (N, d)
    return kl.double().mean(0).float()


def code_variance(z) -> Tensor:
    """z (N, d) -> (d,) variance of each dimension's codes (population variance, N in the denominator)."""
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.dim() != 2 or len(z) == 0:
        raise ValueError(f"code_variance needs codes (N, d) with N >= 1, got shape {tuple(z.shape)}")
    return z.double().var(0, unbiased=False).float()


def dimension_scores(model, x, by: str = "auto", z=None, batch_size: int = 1024) -> tuple[Tensor, str]:
    """-> (scores (d,), "kl" | "variance"). by="auto" takes the KL for a VAE, the code variance
    otherwise. z: the codes of x if already encoded (saves an encode for "variance")."""
    if by not in ("auto",) + SCORES:
        raise ValueError(f"by must be 'auto', 'kl' or 'variance', got {by!r}")
    if by == "auto":
        by = "kl" if _has_posterior(model) else "variance"
    if by == "kl":
        return kl_per_dim(model, x, batch_size), "kl"
    z = encode_dataset(model, x, batch_size) if z is None else z
    return code_variance(z), "variance"


def dimension_order(scores) -> Tensor:
    """Dimension indices sorted by score, largest first; ties keep the lower index first."""
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    return torch.sort(-s, stable=True).indices


def beta_summary(model, x, batch_size: int = 1024) -> dict:
    """The numbers a beta map shows beside its scatter, on the data x:
    {"kl": total KL in nats (sum over dims; NaN for a model without posterior), "kl_per_dim": list,
     "recon_mse": mean per-element squared error of decode(mu) against x}."""
    x = _x(x)
    if _has_posterior(model):
        mu, logvar = _posterior(model, x, batch_size)
        per_dim = _kl(mu, logvar)  # one encode for both
    else:
        mu, per_dim = encode_dataset(model, x, batch_size), None
    x_hat = decode_latents(model, mu, batch_size)
    mse = float(((x_hat - x.float().cpu()) ** 2).double().mean())
    return {"kl": float(per_dim.sum()) if per_dim is not None else float("nan"),
            "kl_per_dim": per_dim.tolist() if per_dim is not None else [], "recon_mse": mse}


# ----------------------------------------------------------------------------- traversal grid

@dataclass
class TraversalGrid:
    """A decoded traversal: images (R, C, *shape); z (R, C, d) the codes decoded; dims (R,) the
    latent dimension of each row; offsets (C,) the column offsets in units of sigma; sigma (R,)
    each row's sigma (code std over the data); scores (R,) each row's score (KL or variance);
    z0 (d,) the sample's code; directions (R, d) each row's move per unit offset, sigma_r * e_{dims_r}
    (so z[r, c] = z0 + offsets[c] * directions[r])."""

    images: Tensor
    z: Tensor
    dims: Tensor
    offsets: Tensor
    sigma: Tensor
    scores: Tensor
    score_kind: str
    z0: Tensor
    directions: Tensor

    @property
    def centre(self) -> int:
        """Column of offset 0: every row decodes the sample's own code there."""
        return int(torch.nonzero(self.offsets == 0).flatten()[0])


def traversal_grid(model, z0, z_data, dims=None, n_steps: int = 7, max_sigma: float = 3.0,
                   scores=None, score_kind: str = "variance") -> TraversalGrid:
    """Decode z0 (d,) with one dimension at a time moved to z0_j + t * sigma_j, t in
    linspace(-max_sigma, max_sigma, n_steps) (n_steps odd, so t = 0, the sample's own code, is the
    centre column, decoded from exactly z0).

    z_data (N, d): the codes of the data, for sigma_j = their std in dimension j (module docstring).
    dims: the dimensions to show, in row order (default: all, ordered by scores, else by variance).
    scores: (d,) a score per dimension for the rows (kl_per_dim or code_variance); default the variance.
    One decode of R * C codes."""
    z_data = torch.as_tensor(z_data, dtype=torch.float32).cpu()
    z0 = torch.as_tensor(z0, dtype=torch.float32).cpu().reshape(-1)
    d = model.latent_dim
    if z_data.dim() != 2 or z_data.shape[1] != d or len(z_data) < 2:
        raise ValueError(f"z_data must be the data's codes (N >= 2, {d}), got shape {tuple(z_data.shape)}")
    if len(z0) != d:
        raise ValueError(f"z0 must have {d} entries (the model's latent size), got {len(z0)}")
    if n_steps < 3 or n_steps % 2 == 0:
        raise ValueError(f"n_steps must be odd and >= 3 (so the centre column is the sample itself), got {n_steps}")
    if not max_sigma > 0:
        raise ValueError(f"max_sigma must be > 0, got {max_sigma}")
    if scores is None:
        scores, score_kind = code_variance(z_data), "variance"
    scores = torch.as_tensor(scores, dtype=torch.float32).reshape(-1)
    dims = dimension_order(scores) if dims is None else torch.as_tensor(dims, dtype=torch.long).reshape(-1)
    if len(dims) == 0 or dims.min() < 0 or dims.max() >= d:
        raise ValueError(f"dims must be a non-empty list of dimensions in [0, {d}), got {dims.tolist()}")
    sigma = z_data.std(0, unbiased=False)[dims]  # (R,)
    directions = traversal_directions(sigma, dims, d)  # (R, d)
    offsets = torch.linspace(-max_sigma, max_sigma, n_steps)  # (C,)
    offsets[n_steps // 2] = 0.0  # exactly 0, whatever linspace's rounding
    r, c = len(dims), n_steps
    z = z0 + offsets[None, :, None] * directions[:, None, :]  # (R, C, d): each row moves along its own dim
    images = decode_latents(model, z.reshape(r * c, d))
    return TraversalGrid(images.reshape(r, c, *images.shape[1:]), z, dims, offsets, sigma, scores[dims], score_kind,
                         z0, directions)


def traversal_directions(sigma, dims, latent_dim: int) -> Tensor:
    """(R, d): row r is sigma_r * e_{dims_r}, the move of one unit offset (1 sigma) along that row's
    dimension. The grid, the server's live column and the browser's slider all use these."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)
    dims = torch.as_tensor(dims, dtype=torch.long).reshape(-1)
    if len(sigma) != len(dims):
        raise ValueError(f"one sigma per dimension: got {len(sigma)} sigmas for {len(dims)} dimensions")
    out = torch.zeros(len(dims), latent_dim)
    out[torch.arange(len(dims)), dims] = sigma
    return out


def traversal_column(model, z0, directions, t: float) -> Tensor:
    """Decode z0 + t * directions[r] for every row r -> (R, *shape): one column of the traversal grid at
    any offset t (in sigma), e.g. between the grid's columns."""
    z0 = torch.as_tensor(z0, dtype=torch.float32).cpu().reshape(1, -1)
    directions = torch.as_tensor(directions, dtype=torch.float32).cpu()
    if directions.dim() != 2 or directions.shape[1] != z0.shape[1]:
        raise ValueError(f"directions must be (R, {z0.shape[1]}), got shape {tuple(directions.shape)}")
    return decode_latents(model, z0 + float(t) * directions)
