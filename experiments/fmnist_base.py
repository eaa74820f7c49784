"""Does a Fashion-MNIST base cover the classes? A trained classifier counts its samples.

A small CNN is trained on Fashion-MNIST's training labels at the model's resolution (two epochs,
about a minute on one core; cached in ``~/.cache/linkgan/fmnist-classifier-<res>.safetensors``)
and measured on the 10k test images. It labels each generated sample (G_ema, seeds 0..N-1,
truncation 1). A blob far from every garment still gets a label, so a sample counts as
*recognisable* only when both

  * the classifier is confident (softmax >= ``--confidence``, 0.5: most of the mass on one class), and
  * the sample is as near to its nearest training image (grey level, L2) as 90% of the test
    images are to theirs.

Reports, as JSON:

  * ``grid64_recognisable_classes``: the classes among the recognisable samples of the 64-sample
    grid (the ADA issue's target is >= 8 of 10), beside ``grid64_classes`` (every label);
  * ``hist``: the classifier's class histogram of ``--n`` samples, as fractions beside the
    uniform 0.1 (a collapsed model puts most in one or two);
  * ``nn_distance``: the mean distance of a sample to its nearest training image, beside the
    same for test images (samples much nearer than test images are memorized);

and writes the 64-sample grid with each sample's label under ``--out`` (grey, in brackets: not
recognisable).

Usage: python experiments/fmnist_base.py --ckpt RUN [--n 1000] [--out docs/images/fmnist-base.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from linkgan.data.fashion_mnist import FASHION_MNIST_CLASSES, fashion_mnist_image, load_fashion_mnist
from linkgan.pipeline import LinkGANPipeline


def grey(images: np.ndarray) -> np.ndarray:
    """(N, R, R, 3) or (N, R, R) uint8 -> (N, R*R) float32 in [0, 1]."""
    x = images.astype(np.float32) / 255.0
    if x.ndim == 4:
        x = x.mean(axis=3)
    return x.reshape(len(x), -1)


def nearest(queries: np.ndarray, refs: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Index of and L2 distance to each query's nearest reference row."""
    r = torch.from_numpy(refs)
    r2 = (r * r).sum(1)
    idx, dist = [], []
    for i in range(0, len(queries), chunk):
        q = torch.from_numpy(queries[i:i + chunk])
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ r.T + r2[None]
        best = d2.min(1)
        idx.append(best.indices.numpy())
        dist.append(best.values.clamp_min(0).sqrt().numpy())
    return np.concatenate(idx), np.concatenate(dist)


def classifier() -> torch.nn.Module:
    """Two conv blocks and a linear layer on (N, 1, R, R) grey in [0, 1]; about 90% on the test set."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.LazyLinear(10))


def trained_classifier(train: np.ndarray, labels: np.ndarray, res: int, epochs: int = 2) -> torch.nn.Module:
    """The classifier trained on (N, R*R) grey images, from the cache when it was trained before."""
    net = classifier()
    net(torch.zeros(1, 1, res, res))  # materialize the lazy layer
    cache = Path.home() / ".cache" / "linkgan" / f"fmnist-classifier-{res}.safetensors"
    if cache.exists():
        net.load_state_dict(load_file(str(cache)))
        return net.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.from_numpy(train).view(-1, 1, res, res)
    y = torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(128):
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(cache)
    return net.eval()


@torch.no_grad()
def classify(net: torch.nn.Module, images: np.ndarray, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Label and softmax confidence of each (N, R*R) grey image."""
    probs = torch.cat([net(torch.from_numpy(c).view(-1, 1, res, res)).softmax(1)
                       for c in np.array_split(images, max(1, len(images) // 512))])
    conf, label = probs.max(1)
    return label.numpy(), conf.numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--confidence", type=float, default=0.5,
                    help="softmax a recognisable sample's label needs")
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    torch.manual_seed(0)
    pipe = LinkGANPipeline.load(args.ckpt)
    res = pipe.G.resolution
    train_x, train_y = load_fashion_mnist(split="train")
    test_x, test_y = load_fashion_mnist(split="test")
    refs = grey(np.stack([fashion_mnist_image(im, res) for im in train_x]))
    test = grey(np.stack([fashion_mnist_image(im, res) for im in test_x]))
    net = trained_classifier(refs, train_y, res)
    t_label, t_conf = classify(net, test, res)
    _, t_dist = nearest(test, refs)

    samples = pipe.generate(seeds=list(range(args.n)), output="numpy")
    s_grey = grey(np.asarray(samples))
    labels, conf = classify(net, s_grey, res)
    _, s_dist = nearest(s_grey, refs)
    near = s_dist <= np.quantile(t_dist, 0.9)
    sure = conf >= args.confidence
    ok = near & sure
    hist = np.bincount(labels, minlength=10)
    names = FASHION_MNIST_CLASSES

    def classes(mask: np.ndarray) -> list[str]:
        return sorted({names[c] for c in labels[:64][mask[:64]]})

    result = {
        "checkpoint": str(pipe.source),
        "classifier_accuracy_on_test": round(float((t_label == test_y).mean()), 4),
        "test_confident_fraction": round(float((t_conf >= args.confidence).mean()), 3),
        "grid64_recognisable_classes": classes(ok), "grid64_recognisable_count": len(classes(ok)),
        "grid64_classes": classes(np.ones_like(ok)), "grid64_confident_classes": classes(sure),
        "grid64_near_classes": classes(near),
        "recognisable_fraction": round(float(ok.mean()), 3),
        "confident_fraction": round(float(sure.mean()), 3),
        "near_fraction": round(float(near.mean()), 3),
        "hist": {names[c]: round(int(h) / args.n, 3) for c, h in enumerate(hist)},
        "hist_recognisable": {names[c]: round(int(h) / args.n, 3)
                              for c, h in enumerate(np.bincount(labels[ok], minlength=10))},
        "classes_with_1pct": int((hist >= 0.01 * args.n).sum()),
        "nn_distance": {"samples": round(float(s_dist.mean()), 3), "test_images": round(float(t_dist.mean()), 3)},
    }
    if args.out:
        from PIL import Image, ImageDraw

        cell = res * 3
        sheet = Image.new("RGB", (8 * cell, 8 * (cell + 12)), "white")
        draw = ImageDraw.Draw(sheet)
        for i in range(64):
            img = Image.fromarray(np.asarray(samples[i])).resize((cell, cell), Image.NEAREST)
            x, y = (i % 8) * cell, (i // 8) * (cell + 12)
            sheet.paste(img, (x, y))
            name = names[labels[i]][:12]
            draw.text((x + 2, y + cell), name if ok[i] else f"({name})", fill="black" if ok[i] else "grey")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.out)
        result["grid"] = args.out
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
