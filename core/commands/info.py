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
    print(f"{ckpt.name}: {m.kind} prior={m.prior} latent_dim={m.latent_dim} input={list(m.input_shape)} "
          f"arch={m.arch} beta={m.beta}{' (normalised)' if m.beta_norm else ''} params={n_params:,}")
    print(f"dataset={meta['dataset']} classes={len(meta['class_names'])} created={meta.get('created', '?')}")
    print("metrics: " + ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in meta.get("metrics", {}).items()))
    print(f"train: {meta.get('train', {})}")
    print(f"sha256={ckpt.sha256}")
    return 0
