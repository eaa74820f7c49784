"""Training the built-in U-Net segmenter on any dataset that carries masks."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ..data import ImageDataset
from ..device import select_device
from .builtin import BuiltinSegmenter
from .evaluate import evaluate_segmenter
from .split import held_out_split, to_minus_one_one
from .unet import UNet, UNetConfig


def train_segmenter(data, out, resolution: int | None = None, steps: int = 1500, batch: int = 32,
                    lr: float = 2e-3, val_fraction: float = 0.1, seed: int = 0,
                    device: str | torch.device | None = None, base_channels: int = 16,
                    progress: bool = True) -> BuiltinSegmenter:
    """Trains a U-Net with per-pixel cross-entropy and writes it to `out` (.safetensors). Returns it.

    data: a dataset with masks (archive or folder, see linkgan.data.ImageDataset).
    resolution: training size in pixels; None means the dataset's own. The
      segmenter later resizes any input to this size.
    steps, batch, lr: Adam steps of `batch` images; the learning rate decays
      to 0 along a cosine. No flips or other augmentation: the built-in
      datasets reach the target without them.
    val_fraction, seed: the held-out split (held_out_split) whose mIoU is
      stored in the metadata (val_miou, val_metrics). seed also seeds the
      initial weights and the batch order.
    device: None or "auto" means CUDA when available, else the CPU.
    base_channels: U-Net width at full resolution (UNetConfig). 16 reaches
      mIoU > 0.9 on 32 px toyfaces and scenes with the defaults.
    """
    # Imported here because evaluate imports this module.
    device = select_device(device)
    dataset = ImageDataset(data, resolution=resolution, return_masks=True)
    train_idx, val_idx = held_out_split(len(dataset), val_fraction, seed)
    torch.manual_seed(seed)
    model = UNet(UNetConfig(num_classes=len(dataset.classes), base_channels=base_channels)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loader = DataLoader(Subset(dataset, train_idx.tolist()), batch_size=batch, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))

    def batches():
        while True:
            yield from loader

    start = time.perf_counter()
    model.train()
    with tqdm(total=steps, desc=f"segmenter {Path(data).name}", unit="step", disable=not progress,
              dynamic_ncols=True, mininterval=1.0) as bar:
        for step, (images, masks) in zip(range(steps), batches()):
            logits = model(to_minus_one_one(images.to(device)))
            loss = F.cross_entropy(logits, masks.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            bar.update()
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    train_seconds = time.perf_counter() - start

    metadata = {
        "classes": dataset.classes,
        "architecture": model.config.to_dict(),
        "resolution": dataset.resolution,
        "input": "minus_one_one",
        "size": dataset.resolution,
        "data": {"source": str(data), "hash": dataset.content_hash, "num_images": len(dataset),
                 "num_train": len(train_idx), "num_val": len(val_idx)},
        "training": {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "val_fraction": val_fraction,
                     "device": str(device), "seconds": round(train_seconds, 1)},
        "val_miou": None,
        "val_metrics": None,
    }
    segmenter = BuiltinSegmenter(model, metadata, name=str(out)).to(device)
    if len(val_idx):
        metrics = evaluate_segmenter(segmenter, dataset, split="val", progress=progress)
        metadata["val_miou"], metadata["val_metrics"] = metrics["miou"], metrics
    segmenter.save(out)
    return segmenter
