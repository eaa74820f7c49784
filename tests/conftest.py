"""Shared fixtures: tiny datasets and tiny model configs, so the suite runs in minutes on 2 cores."""

import numpy as np
import pytest
from PIL import Image

from linkgan.config import ModelConfig, RunConfig, TrainConfig


def tiny_model(res: int = 16) -> ModelConfig:
    return ModelConfig(resolution=res, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)


def tiny_run(data, out, res: int = 16, **train) -> RunConfig:
    defaults = dict(data=str(data), out=str(out), batch=8, kimg=0.048, workers=0, tick_kimg=0.008,
                    snapshot_kimg=1.0, grid_size=4, seed=0, r1_interval=2, pl_weight=2.0, pl_interval=3)
    defaults.update(train)
    return RunConfig(model=tiny_model(res), train=TrainConfig.from_options(**defaults))


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """40 RGB images of a bright disc at random places on a dark background, 16x16."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16]
    for i in range(40):
        cx, cy, r = rng.uniform(4, 12), rng.uniform(4, 12), rng.uniform(2, 5)
        img = np.zeros((16, 16, 3), np.uint8) + rng.integers(0, 60, 3).astype(np.uint8)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(150, 255, 3)
        Image.fromarray(img).save(root / f"{i:03d}.png")
    return root
