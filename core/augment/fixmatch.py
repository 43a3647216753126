"""FixMatch-style consistency regularisation on the unlabelled pool (Sohn et al. 2020), without a generator.

An "online" method: at every training step it draws `n` pool images (n = round(gen_ratio x the real rows of the
batch), the number of generated rows any other method adds to a batch: the shared budget), labels each one by the
classifier being trained on a weakly augmented view (eval mode, no gradient), and returns the strongly augmented
views with a one-hot pseudo-label where the prediction's confidence is at or above `threshold`, and an all-zero
label row below it (a row with a zero label adds nothing to the soft-label cross-entropy: the masked loss of
FixMatch). The batch loss is the mean over real and pool rows, (B Ls + n Lu) / (B + n): FixMatch's Ls + lambda_u Lu
with lambda_u = n / B, scaled by B / (B + n).

Weak view: a random shift (core.augment.pixel.classic, translation only). Strong view: RandAugment-style, `n_ops`
operations of torchvision.transforms.v2.functional with random magnitudes, then a cutout box per image. Every
draw comes from the generator passed in (no global RNG). Images in groups of `group` share one draw of operations
and magnitudes (a per-image torchvision call costs ~0.2 ms per op on a CPU core: ~11 s per 300-step cell; one
call per group ~1.5 s); the shift and the cutout box are per image. Vectors (tabular data): Gaussian noise, weak
0.05 and strong 0.3 standard deviations, plus feature dropout (cutout's vector form).

The pool's labels are never read here: the method receives the pool's inputs only (its `prepare` hook), and the
`PseudoLabels` log it fills holds pool row numbers and predicted classes, which the cell's record scores against
the truth afterwards (a diagnostic, like distillation's pseudo-label accuracy).
"""
from __future__ import annotations

import math

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from core.augment import pixel


class PseudoLabels:
    """What FixMatch pseudo-labelled during one classifier's training: pool rows drawn, and for the kept ones (at
    or above the threshold) their pool row numbers and predicted classes. Filled by `fixmatch`, read by the
    cell's record (core.fewshot.cells.cell_record: "pseudo_label_rate", "pseudo_label_accuracy")."""

    def __init__(self):
        self.drawn = 0
        self.rows: list[Tensor] = []
        self.labels: list[Tensor] = []

    def add(self, rows: Tensor, labels: Tensor, drawn: int) -> None:
        self.drawn += drawn
        self.rows.append(rows.cpu())
        self.labels.append(labels.cpu())

    def summary(self, pool_truth: Tensor | None = None) -> dict:
        """{"pseudo_label_rate": kept / drawn} and, given the pool's true labels (the cell's diagnostic only),
        {"pseudo_label_accuracy": share of kept pseudo-labels that are right} (NaN when none was kept)."""
        rows = torch.cat(self.rows) if self.rows else torch.empty(0, dtype=torch.long)
        labels = torch.cat(self.labels) if self.labels else torch.empty(0, dtype=torch.long)
        out = {"pseudo_label_rate": len(rows) / self.drawn if self.drawn else 0.0}
        if pool_truth is not None:
            out["pseudo_label_accuracy"] = (float((pool_truth[rows] == labels).float().mean()) if len(rows)
                                            else float("nan"))
        return out


def _sign(rng: torch.Generator) -> float:
    return 1.0 if float(torch.rand((), generator=rng, device=rng.device)) < 0.5 else -1.0


def _affine(x, angle=0.0, tx=0.0, ty=0.0, sx=0.0, sy=0.0):
    return TF.affine(x, angle=angle, translate=[tx, ty], scale=1.0, shear=[sx, sy])


# name -> f(x (G, C, H, W) in [0, 1], magnitude in [0, 1], sign +-1): RandAugment's operations for grey images
# (posterize needs integer images: left out; colour operations are meaningless on one channel)
OPS = {
    "identity": lambda x, m, s: x,
    "autocontrast": lambda x, m, s: TF.autocontrast(x),
    "equalize": lambda x, m, s: TF.equalize(x),
    "rotate": lambda x, m, s: TF.rotate(x, angle=s * 30.0 * m),
    "shear_x": lambda x, m, s: _affine(x, sx=s * 30.0 * m),
    "shear_y": lambda x, m, s: _affine(x, sy=s * 30.0 * m),
    "translate_x": lambda x, m, s: _affine(x, tx=round(s * 0.3 * m * x.shape[-1])),
    "translate_y": lambda x, m, s: _affine(x, ty=round(s * 0.3 * m * x.shape[-2])),
    "contrast": lambda x, m, s: TF.adjust_contrast(x, 1.0 + s * 0.9 * m),
    "brightness": lambda x, m, s: TF.adjust_brightness(x, 1.0 + s * 0.9 * m),
    "sharpness": lambda x, m, s: TF.adjust_sharpness(x, 1.0 + s * 0.9 * m),
    "solarize": lambda x, m, s: TF.solarize(x, threshold=1.0 - m),
}


def weak_view(x: Tensor, rng: torch.Generator) -> Tensor:
    """A random shift of up to 1/8 of the side (images); Gaussian noise of 0.05 (vectors)."""
    return pixel.classic(x, x, rng, degrees=0.0, translate=0.0625, scale=0.0, noise=0.0 if x.ndim == 4 else 0.05)[0]


def strong_view(x: Tensor, rng: torch.Generator, n_ops: int = 2, group: int = 8, cutout_area: float = 0.25) -> Tensor:
    """RandAugment-style: per group of `group` images, `n_ops` operations of OPS with random magnitudes; then a
    cutout box covering `cutout_area` of each image. Vectors: noise 0.3 and dropping `cutout_area` of features."""
    if x.ndim == 2:
        noisy = x + 0.3 * torch.randn(x.shape, generator=rng, device=x.device)
        return pixel.cutout(noisy, noisy, rng, area=cutout_area)[0]
    names = list(OPS)
    parts = []
    for xg in x.split(group):                                                   # (G, C, H, W)
        for i in torch.randint(len(names), (n_ops,), generator=rng, device=rng.device).tolist():
            m = float(torch.rand((), generator=rng, device=rng.device))
            xg = OPS[names[i]](xg, m, _sign(rng)).clamp(0, 1)
        parts.append(xg)
    out = torch.cat(parts)
    return pixel.cutout(out, out, rng, area=cutout_area)[0] if cutout_area > 0 else out


def fixmatch(x: Tensor, y: Tensor, rng: torch.Generator, *, n: int, classifier=None, pool_x: Tensor | None = None,
             pseudo_log: PseudoLabels | None = None, threshold: float = 0.95, n_ops: int = 2, group: int = 8,
             cutout_area: float = 0.25) -> tuple[Tensor, Tensor]:
    """n strongly augmented pool rows (n, *shape) and their labels (n, C): one-hot pseudo-labels where the
    classifier's confidence on the weak view is >= threshold, all-zero rows (no loss) elsewhere. x, y: the
    batch's real rows (only C is read from y)."""
    if classifier is None:
        raise ValueError("fixmatch labels the pool with the classifier being trained: it runs in single cells only "
                         "(use --batch 1)")
    if pool_x is None or not len(pool_x):
        raise ValueError("fixmatch needs the unlabelled pool (pool_x): run it in the few-shot protocol")
    if not 0 < threshold <= 1:
        raise ValueError(f"fixmatch threshold (least confidence kept) must be in (0, 1], got {threshold}")
    if n_ops < 0 or group < 1 or not math.isfinite(cutout_area):
        raise ValueError("fixmatch needs n_ops >= 0, group >= 1 and a finite cutout_area")
    rows = torch.randint(len(pool_x), (n,), generator=rng, device=rng.device).to(pool_x.device)     # (n,)
    xu = pool_x[rows].to(x.device, x.dtype)
    weak, strong = weak_view(xu, rng), strong_view(xu, rng, n_ops, group, cutout_area)
    was_training = classifier.training
    classifier.eval()                                  # no dropout draws, no gradient: the target is fixed
    with torch.no_grad():
        probs = torch.softmax(classifier(weak), dim=1)                                           # (n, C)
    classifier.train(was_training)
    conf, pred = probs.max(1)
    keep = conf >= threshold                                                                     # (n,)
    labels = torch.zeros(n, y.shape[1], device=x.device, dtype=y.dtype)
    labels[keep, pred[keep]] = 1.0
    if pseudo_log is not None:
        pseudo_log.add(rows[keep.to(rows.device)], pred[keep], n)
    return strong, labels
