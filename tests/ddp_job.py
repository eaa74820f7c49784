"""A tiny training job for the data-parallel tests (tests/test_distributed.py).

Run under torchrun (``python -m torch.distributed.run --nproc_per_node=2 tests/ddp_job.py OUT MODE STEPS``)
or as a plain process (the single-process reference). Each process writes its G and D
parameters to OUT/params-rank{r}.safetensors after STEPS steps.

MODE:
  equal      no links, constant noise maps, no style mixing or path length: a step is then a
             deterministic function of its latents and images, so that a 2-process step can be
             compared with one process on the same global batch.
  reference  the single process of that comparison: it draws, for each phase, the latents
             that ranks 0 and 1 would draw, interleaved as the data is (rank r has the
             positions r, r + 2, ... of the global batch).
  links      a link and random noise, for the check that ranks stay identical.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))

from conftest import tiny_run  # noqa: E402
from linkgan.distributed import rank_seed  # noqa: E402
from linkgan.metrics import masked_mse_metric  # noqa: E402
from linkgan.training import Trainer  # noqa: E402


class Images(torch.utils.data.Dataset):
    """32 fixed random uint8 images, 16x16."""

    def __init__(self):
        self.images = torch.randint(0, 256, (32, 3, 16, 16), generator=torch.Generator().manual_seed(7),
                                    dtype=torch.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def main(out: str, mode: str, steps: int) -> None:
    train = dict(style_mixing=0.0, pl_weight=0.0, r1_interval=2, batch=8, seed=3)
    if mode == "links":
        train.update(link_interval=2)
    cfg = tiny_run("unused", out, **train)
    if mode == "links":
        cfg.links = [{"name": "blob", "region": {"box": [0.25, 0.25, 0.75, 0.75]}, "axes": 8}]
    trainer = Trainer(cfg, progress=False, dataset=Images())
    if mode in ("equal", "reference"):
        trainer.loss.noise_mode = "const"
    if mode == "reference":
        streams = [torch.Generator(), torch.Generator().manual_seed(rank_seed(3, 1))]
        streams[0].set_state(torch.get_rng_state())  # rank 0 goes on from the weight init, as here

        def draw(n):
            z = torch.empty(n, trainer.G.z_dim)
            for r, g in enumerate(streams):
                z[r::2] = torch.randn(n // 2, trainer.G.z_dim, generator=g)
            return z

        trainer.draw_latents = draw
    trainer.run(max_steps=steps)
    tensors = {f"G.{k}": v.detach().clone() for k, v in trainer.G.named_parameters()}
    tensors.update({f"D.{k}": v.detach().clone() for k, v in trainer.D.named_parameters()})
    tensors["G.w_avg"] = trainer.G.mapping.w_avg.clone() if hasattr(trainer.G.mapping, "w_avg") else torch.zeros(1)
    save_file(tensors, str(Path(out) / f"params-rank{trainer.dist.rank}.safetensors"))
    if mode == "links":
        shared = masked_mse_metric(trainer.G_ema, trainer.partition, n=200, dist_env=trainer.dist)
        if trainer.dist.is_main:
            single = masked_mse_metric(trainer.G_ema, trainer.partition, n=200)
            (Path(out) / "mse.json").write_text(json.dumps({"shared": shared, "single": single}))
    from linkgan.distributed import shutdown

    shutdown(trainer.dist)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
