"""Seconds per epoch on mnist5k: core.train.fit against a bare PyTorch loop of the same model, same run.

The model is the issue's reference: an MLP beta-VAE 784-512-(256)-16 (ModelConfig arch="mlp", hidden=512).
Both loops see the same resident tensor, batch size and optimiser; epochs alternate between the two so
machine noise hits both alike, and the median is reported. Pythae's TrainingPipeline is timed too, on the
same encoder/decoder modules, when `pythae` is installed (`pip install pythae==0.1.2`; not a dependency).

    .venv/bin/python bench/train_speed.py [--epochs 5] [--device auto]

Last line: train_speed core/bare=<ratio> pythae/core=<ratio or n/a>
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import ModelConfig, TrainConfig  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.device import pick_device  # noqa: E402
from core.models import build_model  # noqa: E402
from core.train import fit  # noqa: E402

BATCH, LR = 128, 1e-3


def make_model(data):
    torch.manual_seed(0)
    return build_model(ModelConfig(kind="vae", input_shape=data.input_shape, latent_dim=16, arch="mlp", hidden=512))


def bare_epoch(model, opt, x, gen):
    """The loop anyone would write by hand: no callbacks, no phases, no divergence checks."""
    model.train()
    for idx in torch.randperm(len(x), generator=gen).split(BATCH):
        xb = x[idx.to(x.device)]
        h = model.encoder(xb)
        mu, logvar = h.chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = F.binary_cross_entropy_with_logits(model.decoder(z), xb, reduction="sum") / len(xb)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(xb)
        opt.zero_grad(set_to_none=True)
        (recon + kl).backward()
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def time_pythae(data, epochs: int):
    """Pythae's TrainingPipeline on the same encoder/decoder modules (wrapped in its interfaces)."""
    try:
        from pythae.models import BetaVAE, BetaVAEConfig
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder
        from pythae.pipelines import TrainingPipeline
        from pythae.trainers import BaseTrainerConfig
    except ImportError:
        return None
    import tempfile

    ours = make_model(data)

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = ours.encoder

        def forward(self, x):
            mu, logvar = self.net(x).chunk(2, dim=1)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = ours.decoder

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    cfg = BaseTrainerConfig(output_dir=tempfile.mkdtemp(), num_epochs=epochs, learning_rate=LR,
                            per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH)
    model = BetaVAE(BetaVAEConfig(input_dim=data.input_shape, latent_dim=16, beta=1.0, reconstruction_loss="bce"),
                    encoder=Encoder(), decoder=Decoder())
    t0 = time.perf_counter()
    TrainingPipeline(training_config=cfg, model=model)(train_data=data.x.numpy(), eval_data=None)
    return (time.perf_counter() - t0) / epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = pick_device(args.device)
    data = load_dataset("mnist5k")
    data.x = data.x[:4500]  # the reference figure's 4,500 images
    data.y = data.y[:4500]
    x = data.x.to(device)
    print(f"device={device} threads={torch.get_num_threads()} images={len(x)} batch={BATCH} "
          f"model=MLP beta-VAE 784-512-256-16")

    core_model, bare_model = make_model(data), make_model(data).to(device)
    bare_opt = torch.optim.Adam(bare_model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(0)
    # Warm-up: one epoch each (allocator, kernels), not timed.
    fit(core_model, data, TrainConfig(epochs=1, batch_size=BATCH, lr=LR, device=str(device)))
    bare_epoch(bare_model, bare_opt, x, gen)

    core_s, bare_s = [], []
    for epoch in range(args.epochs):
        h = fit(core_model, data, TrainConfig(epochs=1, batch_size=BATCH, lr=LR, seed=epoch, device=str(device)))
        core_s.append(h["seconds"][0])
        t0 = time.perf_counter()
        bare_epoch(bare_model, bare_opt, x, gen)
        bare_s.append(time.perf_counter() - t0)
    core_med, bare_med = statistics.median(core_s), statistics.median(bare_s)
    print(f"core.train.fit : {core_med:.3f} s/epoch  ({len(x) / core_med:,.0f} img/s)  runs {[round(s, 3) for s in core_s]}")
    print(f"bare loop      : {bare_med:.3f} s/epoch  ({len(x) / bare_med:,.0f} img/s)  runs {[round(s, 3) for s in bare_s]}")
    pythae = time_pythae(data, 3)
    if pythae is None:
        print("pythae         : not installed (pip install pythae==0.1.2 to compare)")
    else:
        print(f"pythae         : {pythae:.3f} s/epoch")
    ratio = core_med / bare_med
    print(f"goal core/bare <= 1.3: {'met' if ratio <= 1.3 else 'NOT met'}")
    print(f"train_speed core/bare={ratio:.2f} pythae/core={'n/a' if pythae is None else f'{pythae / core_med:.1f}'}")


if __name__ == "__main__":
    main()
