"""`python -m core embed CHECKPOINT --dataset ... --out latents.npz`: encode a dataset to latents."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="encode a dataset with a checkpoint; writes z, y and class names to .npz")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", default=None, help="default: the checkpoint's own dataset")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", required=True)


def run(args) -> int:
    import numpy as np

    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.latent import encode_dataset

    ckpt = load_checkpoint(args.checkpoint)
    data = load_dataset(args.dataset or ckpt.meta["dataset"], root=args.data_root)
    if tuple(data.input_shape) != tuple(ckpt.model.config.input_shape):
        raise ValueError(f"{data.id} has inputs {data.input_shape} but the checkpoint expects "
                         f"{tuple(ckpt.model.config.input_shape)}; embed a dataset of the same shape")
    z = encode_dataset(ckpt.model, data.x)
    np.savez(args.out, z=z.numpy(), y=data.y.numpy(), class_names=np.array(data.class_names))
    print(f"wrote {args.out}: z {tuple(z.shape)} from {data.id} with {ckpt.name}")
    return 0
