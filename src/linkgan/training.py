"""The training loop: data, phases, EMA, logging, checkpoints, exact resume.

``train(config)`` runs a whole training job and is what ``linkgan train`` calls.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_name,
    list_checkpoints,
    load_checkpoint,
    load_module,
    load_optimizer,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
)
from .config import ConfigError, ModelConfig, RunConfig, TrainConfig, validate_for_training, validate_run
from .distributed import (
    DistEnv,
    all_gather_objects,
    average_gradients,
    average_tensors,
    barrier,
    broadcast_module,
    init_distributed,
    rank_seed,
    shutdown,
)
from .errors import InputError
from .images import save_png, uint8_to_float
from .losses import LossStats, NonFiniteLossError, Phase, StyleGAN2Loss
from .networks.build import build_discriminator, build_generator
from .regularizer import LinkSettings
from .threed import TriplaneLoss, check_camera_dataset
from .views import generate_grid

PHASE_ORDER = ["Gmain", "Greg", "Glink", "Dmain", "Dreg"]


# torch.compile's backend; tests swap in "aot_eager", which traces forward and backward like
# inductor does but skips the (slow) code generation.
COMPILE_BACKEND = "inductor"


def compile_forwards(modules, mode: str) -> None:
    """Replaces each module's forward by its torch.compile'd version. The modules themselves (their
    parameters, state_dict keys, deepcopies such as G_ema) stay as they are, so checkpoints and
    resume do not see the compilation. Shapes that change (the lazy phases' batches) recompile
    once each and are then cached. R1 and path length (double backward, which compiled graphs do
    not support) run the eager forwards (losses.eager_forwards)."""
    from .losses import CompiledForward

    for module in modules:
        kwargs = {"mode": None if mode == "default" else mode} if COMPILE_BACKEND == "inductor" else {}
        compiled = torch.compile(module.forward, backend=COMPILE_BACKEND, dynamic=False, **kwargs)
        module.forward = CompiledForward(module.forward, compiled)


class ResumableSampler(Sampler):
    """An endless stream of dataset indices that can restart at any position.

    Epoch e is a permutation drawn from (seed, e); position p of the stream is always the
    same index, so resuming at p = images seen replays exactly the data an uninterrupted
    run would have used. With several processes, rank r takes positions r, r+W, r+2W, ...
    """

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.size, self.seed, self.start, self.rank, self.world = size, seed, start, rank, world

    def __iter__(self):
        pos = self.start * self.world + self.rank
        perm, perm_epoch = None, -1
        while True:
            epoch, offset = divmod(pos, self.size)
            if epoch != perm_epoch:
                gen = torch.Generator().manual_seed(self.seed * 100003 + epoch)
                perm, perm_epoch = torch.randperm(self.size, generator=gen), epoch
            yield int(perm[offset])
            pos += self.world

    def __len__(self):  # a nominal length; the stream itself is endless
        return self.size


def _ignore_sigint(_worker_id: int) -> None:
    # Ctrl-C reaches every process of the terminal's group; only the main process should
    # react (by saving a checkpoint), the data workers must keep serving until then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path | None
    images_seen: int
    step: int
    interrupted: bool
    stop_signal: int | None = None  # SIGINT or SIGTERM when interrupted


def auto_r1_gamma(resolution: int, batch: int) -> float:
    """StyleGAN2-ADA's heuristic: gamma = 0.0002 * res^2 / batch."""
    return 0.0002 * resolution ** 2 / batch


def loss_for(m: ModelConfig, t: TrainConfig) -> tuple[type[StyleGAN2Loss], dict]:
    """The loss of a model kind and its kind's options; with the builders (linkgan.networks.build), the one
    place training reads the model kind."""
    if m.kind == "3d":
        return TriplaneLoss, {"gpc_swap": t.gpc_swap, "box_image_term": t.link.box3d_image}
    return StyleGAN2Loss, {}


class Trainer:
    """Holds the networks, optimizers and counters of one run. ``run()`` trains until ``kimg``."""

    def __init__(self, config: RunConfig, resume: str | Path | None = None, progress: bool = True,
                 dataset=None):
        """``dataset`` overrides ``config.train.data`` with any map-style dataset whose items
        are uint8 (3, R, R) tensors (or tuples starting with one)."""
        self.config = config
        t = config.train
        validate_for_training(config)
        if not t.data and dataset is None:
            raise ConfigError("no training data given: pass --data PATH (a dataset .zip or an image folder)")
        if t.batch < 1:
            raise ConfigError(f"--batch must be positive, got {t.batch}")
        self.dist: DistEnv = init_distributed(t.device)
        world = self.dist.world
        if t.batch % world:
            raise ConfigError(f"--batch {t.batch} is the global batch and must divide evenly among the {world} "
                              f"processes; use a multiple of {world}")
        link_batch = t.link.batch or t.batch
        if link_batch < world:
            raise ConfigError(f"--link-batch {link_batch} is global and must give each of the {world} processes "
                              "at least one sample")
        self.local_batch = t.batch // world
        self.progress = progress and self.dist.is_main
        self.device = self.dist.device
        self.run_dir = Path(t.out)
        self.stop_requested = False
        self.stop_signal: int | None = None

        resume_ckpt = load_checkpoint(resume) if resume else None
        init_ckpt = load_checkpoint(t.init) if (t.init and resume_ckpt is None) else None
        if init_ckpt is not None:
            # Fine-tuning keeps the architecture of the initial model.
            config.model = RunConfig.from_dict(init_ckpt.config, str(init_ckpt.path)).model
        m = config.model
        self.partition = config.partition()
        validate_run(config, self.partition)

        torch.manual_seed(t.seed)
        np.random.seed(t.seed)
        self.G = build_generator(m).to(self.device)
        loss_cls, loss_kwargs = loss_for(m, t)
        if dataset is None:
            from .data import ImageDataset
            dataset = ImageDataset(t.data, resolution=m.resolution, xflip=t.xflip, return_cameras=self.G.c_dim > 0)
            stored = dataset.info.get("resolution") if dataset.trusted else None
            if isinstance(stored, int) and stored < m.resolution and self.dist.is_main:
                print(f"note: {t.data} holds {stored}-px images; training at {m.resolution} px upsamples every one "
                      f"(the model cannot learn detail finer than the data's). Use --res {stored}, or data made at "
                      f"{m.resolution} px.", file=sys.stderr)
        self.dataset = dataset
        # A camera-conditioned generator renders its fakes from the dataset's cameras (len, c_dim), as EG3D does.
        self.camera_pool = check_camera_dataset(dataset) if self.G.c_dim else None
        self.D = build_discriminator(m).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        # Each phase switches on gradients for the network it trains and off again after,
        # so that, e.g., the G phase does not also compute D's parameter gradients.
        self.G.requires_grad_(False)
        self.D.requires_grad_(False)
        if t.channels_last and self.device.type == "cuda":
            for net in (self.G, self.D, self.G_ema):
                net.to(memory_format=torch.channels_last)
        if t.compile != "none":
            compile_forwards((self.G.mapping, self.G.synthesis, self.D), t.compile)

        # Saved with explicit axis ranges and absolute mask/segmenter paths, so that every
        # later command finds the same links from any folder.
        config.links = self.partition.to_specs()
        self.link = None
        if len(self.partition):
            self.link = LinkSettings.from_config(self.partition, m.resolution, self.device, t.link,
                                                 batch=link_batch // world)
            note = self.link.tiling_note()
            if note and self.dist.is_main:
                print(note, file=sys.stderr)
        self.metric_names = self._check_metrics(t.metrics)
        # The heuristic follows the global batch, so that a job computes the same gamma on any number of processes.
        self.r1_gamma = t.r1_gamma if t.r1_gamma is not None else auto_r1_gamma(m.resolution, t.batch)
        autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[t.precision]
        self.scaler = torch.amp.GradScaler("cuda") if (t.precision == "fp16" and self.device.type == "cuda") else None
        self.loss = loss_cls(self.G, self.D, self.r1_gamma, style_mixing=t.style_mixing, pl_weight=t.pl_weight,
                             pl_batch_shrink=t.pl_batch_shrink, pl_decay=t.pl_decay, autocast_dtype=autocast_dtype,
                             device=self.device, link=self.link, **loss_kwargs)
        self.augment, self.ada = None, None
        if t.aug != "noaug":
            from .augment import AdaController, AugmentPipe

            self.augment = AugmentPipe(t.augpipe, t.aug_p).to(self.device)
            self.loss.augment = self.augment
            if t.aug == "ada":
                self.ada = AdaController(self.augment, t.aug_target, t.ada_interval, t.ada_kimg, t.batch)
                self.loss.ada = self.ada
        self.phases = self._build_phases()
        self.step = 0
        self.images_seen = 0

        self.resumed = resume_ckpt is not None
        if resume_ckpt is not None:
            self._restore(resume_ckpt)
        elif init_ckpt is not None:
            for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
                load_module(net, init_ckpt, name)
        if self.dist.active:
            for net in (self.G, self.D, self.G_ema):
                broadcast_module(net, self.dist)
            if resume_ckpt is None and self.dist.rank > 0:
                # Every rank built the same initial weights from t.seed; from here on each draws its own latents.
                torch.manual_seed(rank_seed(t.seed, self.dist.rank))
        self.grid_seeds = list(range(t.grid_size))

    # -- set-up ---------------------------------------------------------------------------
    def _check_metrics(self, spec: str) -> list[str]:
        """The --metrics names, checked now rather than at the first snapshot (names, links, model
        kind, and what each metric needs, such as the Inception network for fid/kid/pr)."""
        from .metrics import check_metric_names, parse_metric_names

        try:
            names = parse_metric_names(spec or "")
            families = check_metric_names(names, links=len(self.partition) > 0, kind=self.config.model.kind)
        except InputError as e:
            raise ConfigError(f"--metrics {spec}: {e}") from None
        for metric in families:
            if metric.check is not None:
                metric.check()
        return names

    def _build_phases(self) -> list[Phase]:
        t = self.config.train
        link_start = int(t.link.start_kimg * 1000 / t.batch)
        lazy = {"G": [("Greg", t.pl_interval if t.pl_weight > 0 else 0, 0),
                      ("Glink", t.link.interval if self.link is not None else 0, link_start)],
                "D": [("Dreg", t.r1_interval if self.r1_gamma > 0 else 0, 0)]}
        phases = []
        for name, net, lr in (("G", self.G, t.lr_g), ("D", self.D, t.lr_d)):
            regs = [(phase, k, start) for phase, k, start in lazy[name] if k > 0]
            own = [r for r in regs if r[0] == "Glink" and t.link.optimizer == "separate"]
            shared = [r for r in regs if r not in own]
            # Lazy regularization takes extra optimizer steps; StyleGAN2 shrinks lr and
            # momentum by k/(k+1) so the overall step size matches a non-lazy run. With
            # several lazy phases on one optimizer the extra steps add up: 1 / (1 + sum 1/k).
            ratio = 1.0 / (1.0 + sum(1.0 / k for _, k, _ in shared))
            opt = torch.optim.Adam(net.parameters(), lr=lr * ratio, betas=(t.beta1 ** ratio, t.beta2 ** ratio),
                                   eps=1e-8)
            phases.append(Phase(f"{name}main", net, opt, 1))
            phases.extend(Phase(phase, net, opt, k, start) for phase, k, start in shared)
            for phase, k, start in own:  # its own Adam moments: see TrainConfig.link_optimizer
                # lr is set before each step (link_lr(), which follows the ramp)
                link_opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(t.beta1, t.beta2), eps=1e-8)
                phases.append(Phase(phase, net, link_opt, k, start))
        # Order of a step: G first, then D, as in StyleGAN2-ADA.
        return sorted(phases, key=lambda p: PHASE_ORDER.index(p.name))

    def link_lr(self) -> float:
        """The separate Glink optimizer's learning rate now: link_lr (or lr_g) times the ramp's factor
        (Adam ignores the scale of a loss, so with its own moments the ramp scales the step instead)."""
        t = self.config.train
        return (t.link.lr if t.link.lr is not None else t.lr_g) * self.link_weight()

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers with state to checkpoint: G's and D's, and the Glink phase's own Adam
        under ``link_optimizer: separate``."""
        opts = {p.name[0]: p.opt for p in self.phases if p.name.endswith("main")}
        opts.update({p.name: p.opt for p in self.phases if all(p.opt is not o for o in opts.values())})
        return opts

    def _restore(self, ckpt: Checkpoint) -> None:
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            load_module(net, ckpt, name)
        for name, opt in self.optimizers.items():
            load_optimizer(opt, ckpt, name)
        self.step = int(ckpt.state.get("step", 0))
        self.images_seen = int(ckpt.state.get("images_seen", 0))
        if "state.pl_mean" in ckpt.tensors:
            self.loss.pl_mean.copy_(ckpt.tensors["state.pl_mean"])
        if self.augment is not None and "state.aug_p" in ckpt.tensors:
            self.augment.p.copy_(ckpt.tensors["state.aug_p"])
        if self.link is not None and "state.link_scale" in ckpt.tensors:  # --link-target's strengths go on
            self.link.scale.update(zip(self.partition.names, ckpt.tensors["state.link_scale"].tolist()))
        rank = self.dist.rank
        if self.ada is not None and int(ckpt.state.get("world", 1)) == self.dist.world:
            signs = ckpt.tensors.get(f"state.ada_signs_rank{rank}")
            if signs is not None:  # the sign(D(real)) sum since the last adjustment, so that p moves on exactly
                self.ada.signs = signs.to(torch.float64).clone()
        restore_rng(ckpt)
        if rank > 0:
            own = ckpt.tensors.get(f"state.rng_rank{rank}")
            if own is not None and int(ckpt.state.get("world", 1)) == self.dist.world:
                torch.set_rng_state(own)  # the same job resumed: this rank's stream goes on exactly
            else:  # a different number of processes: a fresh stream per rank, still reproducible
                torch.manual_seed(rank_seed(self.config.train.seed + self.step, rank))

    def _loader(self):
        t = self.config.train
        # Rank r of W takes every W-th image of the one global stream, so that the W local
        # batches of a step together are the global batch that a single process would use.
        sampler = ResumableSampler(len(self.dataset), t.seed, start=self.images_seen // self.dist.world,
                                   rank=self.dist.rank, world=self.dist.world)
        return DataLoader(self.dataset, batch_size=self.local_batch, sampler=sampler, num_workers=t.workers,
                          pin_memory=self.device.type == "cuda", drop_last=True,
                          persistent_workers=t.workers > 0, worker_init_fn=_ignore_sigint,
                          prefetch_factor=4 if t.workers > 0 else None,
                          generator=torch.Generator().manual_seed(t.seed))

    # -- checkpoints ----------------------------------------------------------------------
    def save(self) -> Path:
        """Writes a checkpoint (rank 0; every rank must call it, for the RNG states it gathers)."""
        state = {"step": self.step, "images_seen": self.images_seen, "kimg": self.images_seen / 1000,
                 "world": self.dist.world}
        extra = {"pl_mean": self.loss.pl_mean}
        rng_states = all_gather_objects(torch.get_rng_state(), self.dist)
        extra.update({f"rng_rank{r}": s for r, s in enumerate(rng_states) if r > 0})
        if self.augment is not None:
            extra["aug_p"] = self.augment.p
        if self.link is not None:
            extra["link_scale"] = torch.tensor([self.link.scale[n] for n in self.partition.names], dtype=torch.float64)
        if self.ada is not None:
            signs = all_gather_objects(self.ada.signs.clone(), self.dist)
            extra.update({f"ada_signs_rank{r}": s for r, s in enumerate(signs)})
        path = self.run_dir / checkpoint_name(self.images_seen)
        self._check_finite_state()
        if self.dist.is_main:
            path = save_checkpoint(path, {"G": self.G, "D": self.D, "G_ema": self.G_ema}, self.config.to_dict(),
                                   optimizers=self.optimizers, state=state, extra_tensors=extra)
            prune_checkpoints(self.run_dir, self.config.train.keep_ckpts)
        barrier(self.dist)
        return path

    def _check_finite_state(self) -> None:
        """Refuses to checkpoint NaN/Inf weights or optimizer moments (huge learning rates or
        link weights can overflow Adam's moments while the losses stay finite): such a checkpoint
        would fail again at once on resume, so the previous one stays the newest."""
        bad = [f"{name}.{k}" for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema))
               for k, v in net.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        for name, opt in self.optimizers.items():
            bad += [f"optimizer {name} ({key})" for st in opt.state.values() for key, v in st.items()
                    if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
        bad = list(dict.fromkeys(bad))
        if bad:
            raise NonFiniteLossError(f"the weights or optimizer state became NaN or Inf by step {self.step} "
                                     f"(e.g. {', '.join(bad[:3])}), so no checkpoint was written. Lower the "
                                     "learning rates (--lr-g/--lr-d) or the link weights.")

    def _last_good(self) -> str:
        ckpts = list_checkpoints(self.run_dir) if self.run_dir.is_dir() else []
        if not ckpts:
            return "No checkpoint of this run was written before it"
        return f"The newest checkpoint, {ckpts[-1]}, is from before it: linkgan train --resume {self.run_dir}"

    def _tidy_run_dir(self) -> None:
        """On resume after a crash: removes temporary checkpoint files that a kill left behind,
        and the stats.jsonl rows logged after the checkpoint resumed from (they are logged again)."""
        for tmp in self.run_dir.glob(".ckpt-*.safetensors.tmp*"):
            tmp.unlink(missing_ok=True)
        stats = self.run_dir / "stats.jsonl"
        if not (self.resumed and stats.is_file()):
            return
        kept, dropped = [], 0
        for line in stats.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a row cut short by the kill
                dropped += 1
                continue
            if isinstance(row, dict) and int(row.get("step", 0)) > self.step:
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            tmp = stats.with_name(stats.name + ".tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, stats)

    def save_grid(self) -> Path:
        grid = generate_grid(self.G_ema, self.grid_seeds, self.device)
        path = save_png(grid, self.run_dir / f"samples-{self.images_seen // 1000:06d}kimg.png")
        save_png(grid, self.run_dir / "samples-latest.png")
        return path

    # -- the loop -------------------------------------------------------------------------
    def update_ema(self) -> None:
        t = self.config.train
        ema_nimg = t.ema_kimg * 1000
        if t.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.images_seen * t.ema_rampup)
        beta = 0.5 ** (t.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)

    def draw_latents(self, n: int) -> torch.Tensor:
        """This process's z for one phase. Drawn on the CPU from the global RNG, so that a run
        is reproducible from its checkpointed RNG state; each rank has its own stream."""
        return torch.randn(n, self.G.z_dim)

    def draw_cameras(self, n: int) -> torch.Tensor | None:
        """Cameras (n, c_dim) for this phase's fakes, drawn from the dataset's (as EG3D does), on the CPU
        from the global RNG like the latents; None for a generator without cameras."""
        if self.camera_pool is None:
            return None
        return self.camera_pool[torch.randint(len(self.camera_pool), (n,))]

    def link_weight(self) -> float:
        """The factor on the link regularizer's weights now: 0 -> 1 over link_ramp_kimg after link_start_kimg."""
        t = self.config.train
        if t.link.ramp_kimg <= 0:
            return 1.0
        done = (self.images_seen - t.link.start_kimg * 1000) / (t.link.ramp_kimg * 1000)
        return float(min(max(done, 0.0), 1.0))

    def train_step(self, real_u8: torch.Tensor, stats: LossStats, c_real: torch.Tensor | None = None) -> None:
        """One step of every due phase on one batch. real_u8: (N,3,R,R) uint8; c_real (N, c_dim): their
        cameras (None for a generator without cameras)."""
        t = self.config.train
        real = uint8_to_float(real_u8.to(self.device, non_blocking=True))
        if t.channels_last and self.device.type == "cuda":
            real = real.contiguous(memory_format=torch.channels_last)
        for phase in self.phases:
            if not phase.due(self.step):
                continue
            z = self.draw_latents(self.local_batch).to(self.device)
            c_gen = self.draw_cameras(self.local_batch)
            cams = {"c_real": None if c_real is None else c_real.to(self.device),
                    "c_gen": None if c_gen is None else c_gen.to(self.device)}
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            gain = phase.interval * (self.link_weight() if phase.name == "Glink" else 1.0)
            if phase.name == "Glink" and t.link.optimizer == "separate":
                for group in phase.opt.param_groups:
                    group["lr"] = self.link_lr()
            self.loss.accumulate(phase.name, real, z, gain=gain, stats=stats, step=self.step,
                                 scaler=self.scaler if phase.name.endswith("main") else None, **cams)
            average_gradients(phase.module.parameters(), self.dist)
            phase.module.requires_grad_(False)
            for p in phase.module.parameters():
                if p.grad is not None:
                    # Nan/Inf gradients can come from a finite loss in fp16; drop them, as
                    # StyleGAN2-ADA does, rather than poisoning the weights.
                    torch.nan_to_num_(p.grad, nan=0, posinf=1e5, neginf=-1e5)
            if self.scaler is not None and phase.name.endswith("main"):
                self.scaler.step(phase.opt)
                self.scaler.update()
            else:
                phase.opt.step()
            if phase.name == "Glink" and self.link.target is not None:
                self.link.adapt(self._mean_over_ranks(self.loss.link_localities), images=t.batch * phase.interval)
        if self.dist.active:
            # The running statistics follow each rank's own samples; keep one value. (G's other
            # buffers, the constant noise maps, never change after the initial broadcast.)
            average_tensors([self.G.mapping.w_avg, self.loss.pl_mean], self.dist)
        if self.ada is not None and self.ada.due(self.step):
            signs = self.ada.signs.to(self.device)
            average_tensors([signs], self.dist)  # the mean of sum and count keeps their ratio: r_t over all ranks
            r_t = self.ada.adjust(signs.cpu())
            if r_t is not None:
                stats.add("Progress/ada_rt", r_t)
        self.images_seen += t.batch
        self.step += 1
        self.update_ema()

    def _mean_over_ranks(self, values: dict[str, float]) -> dict[str, float]:
        """Each key's mean over the processes that have it (every process gets the same dict)."""
        if not self.dist.active:
            return values
        per_rank = all_gather_objects(values, self.dist)
        keys = dict.fromkeys(k for r in per_rank for k in r)
        return {k: float(np.mean([r[k] for r in per_rank if k in r])) for k in keys}

    def run(self, max_steps: int | None = None) -> TrainResult:
        """Trains until ``kimg`` (or ``max_steps`` more steps, or Ctrl-C) and saves a checkpoint."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        t = self.config.train
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._tidy_run_dir()
            self.config.save(self.run_dir / "config.yaml")
        total = int(round(t.kimg * 1000))
        tick_every = max(1, int(t.tick_kimg * 1000))
        snap_every = max(1, int(t.snapshot_kimg * 1000))
        writer = SummaryWriter(str(self.run_dir)) if main else None
        stats = LossStats()
        ckpt_path = None
        steps_done = 0
        # Ctrl-C and SIGTERM (what Slurm and Kubernetes send to preempt) both stop at the next step
        # with a checkpoint.
        prev_handlers = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        bar = tqdm(total=total, initial=min(self.images_seen, total), unit="img", unit_scale=True,
                   dynamic_ncols=True, disable=not self.progress, mininterval=1.0,
                   desc=f"train {self.run_dir.name}")
        tick_start, tick_images = time.perf_counter(), self.images_seen
        try:
            if self.images_seen == 0 and main:
                self.save_grid()
            loader = iter(self._loader())
            while self.images_seen < total and not self._stop_agreed():
                real, *rest = _as_tuple(next(loader))
                prev = self.images_seen
                self.train_step(real, stats, rest[-1] if self.camera_pool is not None else None)
                steps_done += 1
                bar.update(self.images_seen - prev)
                bar.set_postfix(kimg=f"{self.images_seen / 1000:.1f}", refresh=False)
                if self.images_seen // tick_every != prev // tick_every or self.images_seen >= total:
                    now = time.perf_counter()
                    speed = (self.images_seen - tick_images) / max(now - tick_start, 1e-9)
                    self._log_tick(writer, stats, speed)
                    tick_start, tick_images = now, self.images_seen
                    # Inf in Adam's moments freezes G or D without a NaN loss; stop at the tick, not the snapshot.
                    self._check_finite_state()
                if self.images_seen // snap_every != prev // snap_every and self.images_seen < total:
                    ckpt_path = self.save()
                    self._log_grid(writer)
                    self._log_metrics(writer)
                if max_steps is not None and steps_done >= max_steps:
                    break
            ckpt_path = self.save()
            self._log_grid(writer)
            if not self.stop_requested:
                self._log_metrics(writer)
        except NonFiniteLossError as e:
            raise NonFiniteLossError(f"{e} {self._last_good()}.") from None
        finally:
            for s, handler in prev_handlers.items():
                signal.signal(s, handler)
            bar.close()
            if writer is not None:
                writer.close()
        if self.stop_requested and main:
            name = signal.Signals(self.stop_signal).name if self.stop_signal else "a stop request"
            print(f"Interrupted by {name}: saved {ckpt_path} at {self.images_seen / 1000:.2f} kimg. "
                  f"Resume with: linkgan train --resume {self.run_dir}")
        return TrainResult(self.run_dir, ckpt_path, self.images_seen, self.step, self.stop_requested,
                           self.stop_signal if self.stop_requested else None)

    def _stop_agreed(self) -> bool:
        """Whether to stop now. With several processes every rank must stop at the same step
        (a Ctrl-C reaches them at different moments), so the flag is all-reduced (max)."""
        if self.dist.active:
            flag = torch.tensor([float(self.stop_requested)], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            self.stop_requested = bool(flag.item())
        return self.stop_requested

    def _request_stop(self, signum, frame) -> None:
        if self.stop_requested:  # a second Ctrl-C aborts at once
            raise KeyboardInterrupt
        self.stop_requested = True
        self.stop_signal = signum

    def _log_tick(self, writer, stats: LossStats, speed: float) -> None:
        """Appends the tick's means (over all ranks) to stats.jsonl and TensorBoard; rank 0 writes."""
        means = self._mean_over_ranks(stats.means())
        stats.clear()
        if not self.dist.is_main:
            return
        record = {"step": self.step, "kimg": self.images_seen / 1000, "img_per_s": speed, **means}
        if self.augment is not None:
            record["Progress/augment"] = float(self.augment.p)  # p now, not a mean over the tick
        if self.link is not None and self.link.target is not None:
            record.update({f"Progress/link_scale/{n}": s for n, s in self.link.scale.items()})
        for k, v in record.items():
            if k not in ("step", "kimg"):
                writer.add_scalar(k if "/" in k else f"Timing/{k}", v, self.images_seen)
        writer.add_scalar("Progress/kimg", record["kimg"], self.images_seen)
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _log_metrics(self, writer) -> None:
        """Evaluates TrainConfig.metrics on G_ema; the training RNG is left untouched."""
        if not self.metric_names:
            return
        from .metrics import compute_metrics, flatten_metrics

        result = compute_metrics(self.G_ema, self.partition, self.metric_names, device=self.device,
                                 data=self.dataset, dist_env=self.dist)
        if not self.dist.is_main:
            return
        record = {"step": self.step, "kimg": self.images_seen / 1000, **flatten_metrics(result)}
        for k, v in record.items():
            if k not in ("step", "kimg"):
                writer.add_scalar(k, v, self.images_seen)
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _log_grid(self, writer) -> None:
        if writer is None:
            return
        self.save_grid()
        from PIL import Image
        grid = np.asarray(Image.open(self.run_dir / "samples-latest.png"))
        writer.add_image("Samples/G_ema", grid, self.images_seen, dataformats="HWC")


def _as_tuple(batch):
    return batch if isinstance(batch, (tuple, list)) else (batch,)


def train(config: RunConfig, resume: str | Path | None = None, progress: bool = True,
          max_steps: int | None = None) -> TrainResult:
    """Trains a model as described by ``config``; resumes from ``resume`` (a run dir or file).

    On a NaN/Inf loss raises ``NonFiniteLossError`` without writing a checkpoint, so the
    newest checkpoint on disk is the last good one.
    """
    trainer = Trainer(config, resume=resume, progress=progress)
    result = trainer.run(max_steps=max_steps)
    # Not in a `finally`: after an error on one rank the others are inside a collective and
    # would wait for it; the failing process exits instead and torchrun stops the rest.
    shutdown(trainer.dist)
    return result


__all__ = ["train", "Trainer", "TrainResult", "ResumableSampler", "build_generator", "build_discriminator",
           "NonFiniteLossError", "CheckpointError", "loss_for"]
