"""`python -m core info CHECKPOINT`: describe a checkpoint; exit 1 with a one-line reason if it is bad."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="describe a checkpoint folder (exit 1 if it is damaged)")
    p.add_argument("checkpoint")


def run(args) -> int:
    from core.checkpoints import CheckpointError, load_checkpoint

    try:
        ckpt = load_checkpoint(args.checkpoint, device="cpu")
    except CheckpointError as exc:
        print(f"bad checkpoint: {exc}", file=sys.stderr)
        return 1
    m, meta = ckpt.model.config, ckpt.meta
    n_params = sum(p.numel() for p in ckpt.model.parameters())
    settings = " ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in m.to_dict().items()
                        if k not in ("kind", "prior"))
    print(f"{ckpt.name}: {m.kind} prior={m.prior} {settings} params={n_params:,}  ({m.describe()})")
    print(f"dataset={meta['dataset']} classes={len(meta['class_names'])} created={meta.get('created', '?')}")
    print("metrics: " + ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in meta.get("metrics", {}).items()))
    print(f"train: {meta.get('train', {})}")
    print(f"sha256={ckpt.sha256}")
    return 0
