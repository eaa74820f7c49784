"""Typed configuration of a run, saved beside every checkpoint.

Every training option lives in exactly one dataclass field. The CLI builds its flags from
these fields (``flag`` and ``help`` in each field's metadata), a YAML/JSON file given with
``--config`` fills them, and the resolved config is stored in the run directory and in
each checkpoint's metadata.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dacite
import yaml

from .errors import InputError


class ConfigError(InputError):
    """A config file or option is invalid; the message names the key and the fix."""


# Version 1 kept every option flat in model: and train:. Version 2 groups the LinkGAN regularizer's
# options under train: link: and the 3D generator's under model: triplane:, under the same flat names.
# Version 3 adds train: link: target (on by default). Version 4 makes train: link: perturb 'swap' by
# default; an older config that leaves it out keeps 'gaussian' (LINK_BEHAVIOUR_BEFORE). Version 5 lowers
# train: link: lambda_in from 10 to 3; an older config that leaves it out keeps 10.
CONFIG_VERSION = 5


def opt(default, help: str, flag: str | None = None, choices=None):
    """A dataclass field carrying its CLI flag and help text."""
    meta = {"help": help}
    if flag:
        meta["flag"] = flag
    if choices:
        meta["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls, help: str, prefix: str = ""):
    """A dataclass field holding a nested group of options (``cls``), e.g. TrainConfig.link.

    Its options keep flat names, the group's ``prefix`` and their own name (``link_`` + ``alpha``
    is ``link_alpha``): the flags (``--link-alpha``), the arm files of experiments/ and
    version-1 config files use them, and ``from_options``/``get_option``/``set_option`` take them."""
    return field(default_factory=cls, metadata={"help": help, "prefix": prefix, "section": True})


@dataclass(frozen=True)
class Option:
    """One leaf option of a config class: its flat name, its path of attribute names, its field."""

    name: str
    path: tuple[str, ...]
    field: dataclasses.Field
    type: Any

    @property
    def flag(self) -> str:
        return self.field.metadata.get("flag") or "--" + self.name.replace("_", "-")


@functools.cache
def options_of(cls, prefix: str = "", path: tuple[str, ...] = ()) -> tuple[Option, ...]:
    """Every leaf option of config class ``cls``, nested groups included, in field order."""
    hints = typing.get_type_hints(cls)
    out: list[Option] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("section"):
            out += options_of(hints[f.name], prefix + f.metadata.get("prefix", ""), path + (f.name,))
        else:
            out.append(Option(prefix + f.name, path + (f.name,), f, hints[f.name]))
    return tuple(out)


def _option(cls, name: str) -> Option:
    found = next((o for o in options_of(cls) if o.name == name), None)
    if found is None:
        import difflib

        names = [o.name for o in options_of(cls)]
        close = difflib.get_close_matches(name, names, n=1)
        raise ConfigError(f"{name!r} is not a {cls.__name__} option"
                          + (f" (did you mean {close[0]!r}?)" if close else "; see `linkgan train --help`"))
    return found


def get_option(obj, name: str):
    """The value of option ``name`` (its flat name, e.g. ``link_alpha``) of a config object."""
    for attr in _option(type(obj), name).path:
        obj = getattr(obj, attr)
    return obj


def set_option(obj, name: str, value) -> None:
    """Sets option ``name`` (its flat name, e.g. ``link_alpha`` or ``plane_resolution``) of a config object."""
    path = _option(type(obj), name).path
    for attr in path[:-1]:
        obj = getattr(obj, attr)
    setattr(obj, path[-1], value)


class _Options:
    """What ModelConfig and TrainConfig share: building from flat option names."""

    @classmethod
    def from_options(cls, **options):
        """The config with the defaults but for ``options``, given by their flat names, nested groups'
        included: ``TrainConfig.from_options(kimg=20, link_lambda_in=3.0)``."""
        obj = cls()
        for name, value in options.items():
            set_option(obj, name, value)
        return obj


@dataclass
class TriplaneOptions:
    """The 3D-aware generator's architecture (``model: {triplane: {...}}``); used by ``kind: 3d`` only."""

    plane_resolution: int = opt(64, "3D: resolution of the three feature planes (the backbone's output).",
                                flag="--plane-res")
    plane_channels: int = opt(32, "3D: feature channels per plane.")
    decoder_hidden: int = opt(64, "3D: hidden width of the MLP that decodes plane features into density and "
                              "colour features.")
    feature_channels: int = opt(32, "3D: features decoded per 3D point; the first 3 are the raw RGB.")
    superresolution: bool = opt(True, "3D: render rays at --res/2 and upsample 2x with a w-modulated "
                                "super-resolution stage (D then also sees the raw render).")
    sr_channels: int = opt(64, "3D: channels of the super-resolution stage.")
    box_size: float = opt(1.0, "3D: side of the world cube [-s/2, s/2]^3 that the planes span (world units).")
    ray_near: float = opt(2.2, "3D: start of the rendered ray segment, in world units from the camera centre "
                          "(toyheads: 2.2).")
    ray_far: float = opt(3.2, "3D: end of the rendered ray segment (toyheads: 3.2).")
    coarse_samples: int = opt(24, "3D: stratified samples per ray.")
    fine_samples: int = opt(24, "3D: importance samples per ray, drawn from the coarse weights (0 = none).")
    camera_radius: float = opt(2.7, "3D: camera distance to the origin of the views rendered for sample grids, "
                               "edits and metrics (toyheads: 2.7).")
    camera_focal: float = opt(2.8, "3D: normalized focal length of those views (toyheads: 2.8).")


@dataclass
class ModelConfig(_Options):
    """Architecture of G and D. Resolution-dependent widths: min(channel_base / res, channel_max)."""

    resolution: int = opt(32, "Training resolution in pixels: a power of two from 16 to 1024.", flag="--res")
    z_dim: int = opt(512, "Dimension of the input latent z.")
    w_dim: int = opt(512, "Dimension of the intermediate latent w, the space LinkGAN partitions.")
    mapping_layers: int = opt(8, "Number of fully connected layers in the mapping network.", flag="--map-layers")
    mapping_lr_mul: float = opt(0.01, "Learning-rate multiplier of the mapping network.")
    channel_base: int = opt(16384, "Width numerator: a block at resolution r has channel_base/r channels.",
                            flag="--cbase")
    channel_max: int = opt(512, "Upper bound on the channels of any block.", flag="--cmax")
    img_channels: int = opt(3, "Image channels (3 for RGB).")
    mbstd_group: int = opt(4, "Group size of D's minibatch standard-deviation layer.")
    modconv: str = opt("auto", "Modulated-conv formulation: 'grouped' (one weight per sample), 'scaled' "
                       "(scale activations; fastest on CPU for batches > 1) or 'auto'.",
                       choices=["auto", "grouped", "scaled"])
    conv_clamp: float | None = opt(None, "Clamp conv activations to +-this value (256 is usual with fp16); "
                                   "unset for no clamp.")
    numerics: str = opt("official", "What the networks compute: 'official' is stylegan2-ada-pytorch's StyleGAN2 "
                        "(transposed up-sampling convs with the [1,3,3,1] filter, zero-padded skip upsampling, "
                        "full-resolution blur before D's strided convs), so that imported NVIDIA and rosinality "
                        "weights compute their own images; 'rosinality' is the same but for where the demodulation "
                        "epsilon sits (rosinality's placement; `linkgan import` sets it for rosinality files); "
                        "'legacy' is linkgan's first dialect, which checkpoints written before this option "
                        "existed use. Same parameters and names in all three.",
                        choices=["official", "rosinality", "legacy"])
    # 3D-aware generator (kind: 3d), EG3D-style: see linkgan.networks.triplane and linkgan.threed.
    kind: str = opt("2d", "Generator kind: '2d' (StyleGAN2) or '3d' (EG3D-style tri-plane generator with volume "
                    "rendering and a camera-conditioned D; the data needs camera labels, e.g. `linkgan dataset "
                    "toyheads`). In 3D, --res is the resolution of the final image that D sees.",
                    choices=["2d", "3d"])
    triplane: TriplaneOptions = section(TriplaneOptions, "The 3D generator's architecture (kind 3d).")


@dataclass
class LinkConfig:
    """The LinkGAN regularizer of a run with links (``train: {link: {...}}`` in a config file); each
    option's flat name and flag carry ``link_`` / ``--link-`` (``alpha``: ``link_alpha``, ``--link-alpha``)."""

    interval: int = opt(8, "Lazy LinkGAN regularizer: run the Glink phase every this many steps; its loss is "
                        "scaled by the interval.")
    alpha: float = opt(1.0, "Perturbation strength alpha: the edited w axes move alpha of the way to another "
                       "sample's w (--link-perturb swap) or by alpha * N(0, I) (gaussian).")
    lambda_in: float = opt(3.0, "Weight lambda_in of L_in (change inside the region when the complement moves); "
                           "a link's 'weight' in the links file multiplies it for that link. 3 since config "
                           "version 5 (10 before): measured at the other defaults, 10-kimg fine-tunes "
                           "(docs/results/quality.md), it makes the links more local at the same or lower FID "
                           "cost: toyfaces eyes 0.068 at FID -5% over vanilla (0.072 at +1% with 10), eyes and "
                           "mouth 0.067/0.057 at +9% (0.076/0.061 at +9%), four corners 0.052-0.075 at +42% "
                           "(0.055-0.065 at +59%), a Fashion-MNIST centre box 0.078 at +46% (0.096 at +64%). "
                           "The price: the other axes move the region more (the link carries 0.36 of the "
                           "eyes' variation instead of 0.46).")
    lambda_out: float = opt(30.0, "Weight lambda_out of L_out (change outside the region when the link's axes "
                            "move); a link's 'weight' multiplies it for that link.")
    strength: float = opt(1.0, "The locality-quality knob: scales lambda_in and lambda_out together. Higher is "
                          "more local and costs more realism; lower keeps the model closer to vanilla and lets "
                          "edits leak. Measured with config version 4's lambdas 10/30 (version 5 lowers lambda_in "
                          "to 3) on toyfaces, one eyes link, 10-kimg fine-tune with Gaussian "
                          "edits at fixed weights, against a vanilla fine-tune whose locality is 0.83 "
                          "(docs/results/quality.md): 1: locality 0.076, FID +10%; "
                          "0.3: 0.12, FID +0%; 0.1: 0.20, FID -6%; 0.03: 0.37, about the paper's looser 0.43. "
                          "Two and four links cost more FID at each setting. Real photos cost more: a "
                          "Fashion-MNIST centre box, 10 kimg (swap edits, the locality target, lambdas 10/30), "
                          "vanilla's locality 0.45: 1: 0.096, FID +64% (+71% with another seed); 0.3: 0.145, "
                          "+33%; 0.1: 0.26, -2%; 0.01: 0.41, -14%; with lambda_in 3 (version 5), 1: 0.078, "
                          "+46%. Has no effect on the step size under "
                          "--link-optimizer separate.")
    target: float | None = opt(0.08, "Locality to steer each link's strength to: after every Glink step a link "
                               "whose edits in that step were more local than this (mse_out / mse_in, the "
                               "Loss/link/locality/<name> curve) loses strength, and one less local gains it "
                               "back, by up to 10x per 2 kimg, never above the lambdas (x --link-strength) nor "
                               "below a hundredth of them (Progress/link_scale/<name>). So a link that becomes "
                               "local fast stops pushing G once it is local enough instead of trading realism "
                               "for more locality. mse1k on G_ema reads about 0.75-1x the training edits' "
                               "value. Measured with Gaussian edits (docs/results/quality.md, 10-kimg "
                               "fine-tunes): a Fashion-MNIST top-half link that fixed weights drive to "
                               "locality 0.024 at FID +188% ends at 0.060 and FID +118% (0.085 and +121% with a "
                               "target of 0.1); toyfaces eyes, not that local yet, end as with fixed weights "
                               "(0.077 against 0.076; with 0.1, 0.098). Unset (none) for fixed weights. 3D-box "
                               "links keep fixed weights.")
    shared_axes: int = opt(0, "Shared axes: the last N channels of W belong to no link and to no link's "
                           "complement, so the regularizer lets them change every region. They can carry "
                           "what spans several regions (skin tone, light, the background's colour), which "
                           "links that tile the image otherwise cannot vary at all. Each link's own edits stay "
                           "local; resampling every other axis of a link (mse_in_complement, "
                           "`linkgan edit --complement`) leaves them as they are, and `linkgan edit --link "
                           "shared` edits them. Four toyfaces corners after 10 kimg at lambda_in 3: FID +42% over "
                           "vanilla with none shared (128 axes each), +23% and +27% (two seeds) with 128 shared (96 "
                           "each); at lambda_in "
                           "10 after 20 kimg: +32% with none, +26% with 128, +15% with 256 (64 each; but +85% "
                           "after 10 kimg); docs/results/quality.md. Training prints a note when fixed regions "
                           "tile the image and none are shared. 0 (the default) is the paper's partition.")
    loss: str = opt("relative", "Form of L_in/L_out: 'absolute' (the paper's masked mean squared change) or "
                    "'relative' (each divided by the whole change of the same edit; scale free).",
                    choices=["absolute", "relative"])
    batch: int | None = opt(None, "Sub-batch of the Glink phase; unset = the whole batch (less under --link-budget).")
    samples: str = opt("all", "How the Glink sub-batch serves several links: 'all' (the default) renders every "
                       "link's edits for every sample ((1 + 2K) images per sample); 'split' deals the samples "
                       "out to the links (3 images per sample whatever K is: cheaper, but each link learns "
                       "from fewer samples and locality comes slower); 'factorized' renders one edit per link "
                       "plus one edit of the free axes ((2 + K) images per sample) and lets each link's "
                       "outside term stand for the other links' share of its inside term; 'auto' is "
                       "'factorized' for two or more disjoint links and 'all' otherwise. Measured with two "
                       "links at the default weights and Gaussian edits (docs/results/quality.md): 'all' FID "
                       "+18% over vanilla, 'auto' with --link-budget 3 +28% (the faces lose their hair).",
                       choices=["all", "split", "factorized", "auto"])
    budget: float | None = opt(None, "Cap on the images the Glink phase renders, as a multiple of its sub-batch "
                               "(--link-batch or --batch): 3 is what one link costs in every mode. With more "
                               "links the sub-batch shrinks to fit (at least 1 sample per process), so that the "
                               "phase costs about the same whatever the number of links (four links: 1.12x "
                               "vanilla's step time, as one link, instead of 1.57x); each link then learns from "
                               "fewer samples per step, which costs locality and FID (two links at the default "
                               "weights: FID +21% instead of +18%). Unset (the default; null in a config file) "
                               "for no cap.")
    start_kimg: float = opt(0.0, "Warm-up: start the regularizer after this many kimg (for training from "
                            "scratch).")
    ramp_kimg: float = opt(0.0, "Ramp: scale lambda_in and lambda_out linearly from 0 to their values over this "
                           "many kimg after link_start_kimg, so that G adapts to the regularizer gradually "
                           "(0 = full weight at once).")
    perturb: str = opt("swap", "How the regularizer's edits (and the perturbed fakes) move w: 'swap' (the "
                       "default) moves the edited axes alpha of the way to another sample's w in the Glink "
                       "sub-batch, so that at alpha 1 they are resampled from the model's own W distribution: "
                       "the edit that `linkgan edit` makes and mse1k measures (it needs 2 or more samples per "
                       "process); 'gaussian' adds alpha * N(0, I) (the paper's), which lands about 2 standard "
                       "deviations of W off it per axis. Measured with two links at the default lambdas, fixed "
                       "weights (docs/results/quality.md): 'swap' locality 0.044/0.033 at FID +6% over "
                       "vanilla, 'gaussian' 0.087/0.083 at +14%; at the defaults (the locality target) "
                       "'swap' 0.076/0.061 at +9%, 'gaussian' 0.085/0.087 at +18%.",
                       choices=["gaussian", "swap"])
    optimizer: str = opt("shared", "Which Adam moments the lazy Glink step uses: 'shared' is StyleGAN2's lazy "
                         "regularization (G's one Adam; the link gradient, multiplied by the interval, "
                         "enters its second moments, so when it is much larger than the adversarial "
                         "gradient every adversarial step after it shrinks; experiments/link_gradients.py "
                         "measures by how much); 'separate' gives the Glink step its own Adam, so G's "
                         "adversarial steps keep their size. Adam ignores a loss's scale, so with "
                         "'separate' the link's strength is set by --link-lr and the interval (the lambdas "
                         "only weigh the terms against each other).",
                         choices=["shared", "separate"])
    lr: float | None = opt(None, "Learning rate of the Glink step's own Adam (link_optimizer 'separate'); "
                           "unset = lr_g. Each Glink step then moves a weight by about this much.")
    box3d_image: bool = opt(True, "3D-box links: besides the field inside and outside the box, penalize "
                            "change of the rendered image outside the box's footprint (pixels whose ray misses "
                            "the box, dilated by 2) when the link's axes move; this reaches the "
                            "super-resolution stage, which the field loss does not see.")
    fakes: float = opt(0.25, "Fraction of each fake batch (G and D phases) generated from perturbed latents, "
                       "so that D sees perturbed images as fakes and G keeps them realistic; 0 turns it off.")


@dataclass
class TrainConfig(_Options):
    """Optimization, regularization, logging and checkpointing of one run."""

    data: str = opt("", "Training data: a dataset archive (.zip) or a folder of images.")
    out: str = opt("runs/train", "Run directory for checkpoints, logs, sample grids and the config.")
    kimg: float = opt(100.0, "Training length in thousands of real images shown to D.")
    batch: int = opt(32, "Batch size (global, across all processes).")
    lr_g: float = opt(0.0025, "Adam learning rate of G.")
    lr_d: float = opt(0.0025, "Adam learning rate of D.")
    beta1: float = opt(0.0, "Adam beta1 for G and D.")
    beta2: float = opt(0.99, "Adam beta2 for G and D.")
    r1_gamma: float | None = opt(None, "R1 weight gamma; unset = StyleGAN2-ADA's heuristic 0.0002 * res^2 / batch.")
    r1_interval: int = opt(16, "Lazy R1: run the D regularization phase every this many steps (0 = off).")
    pl_weight: float = opt(0.0, "Path-length regularization weight (StyleGAN2 uses 2); 0 turns it off.")
    pl_interval: int = opt(4, "Lazy path-length regularization: every this many steps.")
    pl_batch_shrink: int = opt(2, "The path-length phase uses batch / this many samples.")
    pl_decay: float = opt(0.01, "Decay of the running mean path length.")
    style_mixing: float = opt(0.9, "Probability of style mixing regularization per batch.")
    ema_kimg: float = opt(10.0, "Half-life of the G_ema weights, in thousands of images.")
    ema_rampup: float | None = opt(0.05, "Ramp the EMA half-life up as this fraction of the images seen so far "
                                   "(unset for none).")
    xflip: bool = opt(False, "Augment the data with horizontal flips (doubles the dataset).")
    aug: str = opt("noaug", "Discriminator augmentation (ADA, Karras et al. 2020): every image D sees, real or "
                   "fake, is transformed at random, each transform with probability p, so that D cannot "
                   "memorize a small dataset (a few thousand images). 'ada' tunes p during training from "
                   "sign(D(real)) toward --aug-target; 'fixed' keeps p at --aug-p; 'noaug' shows D the "
                   "images as they are. The LinkGAN regularizer never sees augmented images.",
                   choices=["noaug", "ada", "fixed"])
    aug_p: float = opt(0.0, "Augmentation probability: the p of --aug fixed, or the starting p of --aug ada.")
    aug_target: float = opt(0.6, "--aug ada: target of the overfitting heuristic r_t = E[sign(D(real))]; p rises "
                            "while r_t is above it and falls while below.")
    augpipe: str = opt("bgc", "Augmentation pipeline: 'blit' (x-flip, 90-degree rotations, integer shifts), 'geom' "
                       "(scaling, rotation, anisotropic scaling, fractional shifts), 'color' (brightness, contrast, "
                       "luma flip, hue, saturation), 'bg' = blit + geom, 'bgc' = all three (the paper's).",
                       choices=["blit", "geom", "color", "bg", "bgc"])
    ada_kimg: float = opt(500.0, "--aug ada: speed of the adjustment: p can move from 0 to 1 in this many kimg "
                          "(500 as in the paper).")
    ada_interval: int = opt(4, "--aug ada: adjust p every this many steps.")
    seed: int = opt(0, "Random seed of the run.")
    workers: int = opt(2, "DataLoader worker processes.")
    tick_kimg: float = opt(1.0, "Log losses and speed to TensorBoard and stats.jsonl every this many kimg.")
    snapshot_kimg: float = opt(10.0, "Write a checkpoint and a sample grid every this many kimg.")
    keep_ckpts: int = opt(3, "Keep this many newest checkpoints (older ones are deleted).")
    grid_size: int = opt(64, "Number of images in the sample grids (fixed seeds 0..grid_size-1).")
    device: str = opt("auto", "Device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'.")
    precision: str = opt("fp32", "Precision of the main G and D phases on CUDA: fp32, bf16 or fp16 (with loss "
                         "scaling). Regularizers always run in fp32. Ignored on CPU.",
                         choices=["fp32", "bf16", "fp16"])
    channels_last: bool = opt(False, "Use the channels_last memory format on CUDA.")
    compile: str = opt("none", "torch.compile the forward passes of G's mapping and synthesis networks and of D "
                       "with this mode (none: eager). The first steps are slow while it compiles; worth it for "
                       "long CUDA runs. 2D models only.",
                       choices=["none", "default", "reduce-overhead", "max-autotune"])
    metrics: str = opt("", "Metrics of G_ema to evaluate at every snapshot and at the end, logged to TensorBoard "
                       "and stats.jsonl: e.g. fid5k,mse1k (see `linkgan metrics --help`).")
    init: str = opt("", "Initialize G, D and G_ema from this checkpoint or run (fine-tuning); the "
                    "optimizer state starts fresh.")
    # LinkGAN regularizer (active when the run has links; see linkgan.regularizer).
    link: LinkConfig = section(LinkConfig, "The LinkGAN regularizer (active when the run has links).", prefix="link_")
    segmenter: str = opt("", "Segmenter for semantic links that name none: a .safetensors file from "
                         "`linkgan segmenter train`, a TorchScript or ONNX file, or package.module:attr.")
    gpc_swap: float = opt(0.5, "3D: probability that the mapping network is conditioned on another sample's "
                          "camera than the one rendered (EG3D's generator pose-conditioning swap), so that "
                          "identity does not become tied to pose.")


@dataclass
class RunConfig:
    """Everything needed to rebuild a run: the model, the training options, and the links."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    links: list[dict] = field(default_factory=list)  # LinkGAN links: {name, region, axes} each
    allow_link_overlap: bool = False  # fixed regions of two links may share pixels
    preset: str = ""  # the --preset the run started from (its values are in model: and train:)
    version: int = CONFIG_VERSION

    def partition(self):
        """The run's LatentPartition (empty for a vanilla model), validated at the model resolution."""
        from .partition import LatentPartition
        return LatentPartition.from_specs(self.links, self.model.w_dim, self.model.resolution,
                                          allow_overlap=self.allow_link_overlap, segmenter=self.train.segmenter or None,
                                          shared=self.train.link.shared_axes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "RunConfig":
        """The config of a dict as ``to_dict`` writes it; version-1 dicts (flat ``link_*`` and 3D options) too."""
        return from_dict(cls, migrate_config(d) if isinstance(d, dict) else d, source)

    def save(self, path: str | Path) -> None:
        """Writes the config as YAML (``.yaml``/``.yml``) or JSON, atomically."""
        path = Path(path)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False) if path.suffix in (".yaml", ".yml") else self.to_json()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def migrate_config(d: dict[str, Any]) -> dict[str, Any]:
    """A run config dict (or a config file's) with every option of a nested group given by its flat
    name moved into its group: ``train: {link_alpha: 2}`` becomes ``train: {link: {alpha: 2}}``. So
    version-1 configs (checkpoints, config.yaml files, --config files written before the groups)
    read as they did. A value given both ways is an error. Returns a new dict."""
    out = dict(d)
    for key, cls in (("model", ModelConfig), ("train", TrainConfig)):
        section_dict = out.get(key)
        if not isinstance(section_dict, dict):
            continue
        section_dict = {k: dict(v) if isinstance(v, dict) else v for k, v in section_dict.items()}
        for o in options_of(cls):
            if len(o.path) < 2 or o.name not in section_dict:
                continue
            group = section_dict.setdefault(o.path[0], {})
            if not isinstance(group, dict):
                continue  # from_dict reports the wrong type
            if o.path[1] in group:
                raise ConfigError(f"{key}: option {o.name!r} is given twice, flat and as {o.path[0]}: "
                                  f"{{{o.path[1]}: ...}}; keep one")
            group[o.path[1]] = section_dict.pop(o.name)
        out[key] = section_dict
    version = out.get("version")
    if isinstance(version, int) and isinstance(out.get("train"), dict):
        # Link options that later versions added: an older run (resumed, or read by a tool) keeps
        # training as it did, whatever their defaults are now.
        link = out["train"].setdefault("link", {})
        if isinstance(link, dict):
            for added_in, behaviour in LINK_BEHAVIOUR_BEFORE.items():
                if version < added_in:
                    for name, value in behaviour.items():
                        link.setdefault(name, value)
    if "version" in out and isinstance(out["version"], int) and out["version"] < CONFIG_VERSION:
        out["version"] = CONFIG_VERSION
    return out


# What a config older than version v did for the link options that version v added or whose default it
# changed: {v: {option: value}}.
LINK_BEHAVIOUR_BEFORE = {2: {"budget": None, "strength": 1.0}, 3: {"target": None}, 4: {"perturb": "gaussian"},
                         5: {"lambda_in": 10.0}}


def flat_options(section_dict: dict[str, Any], cls) -> dict[str, Any]:
    """A (migrated) model: or train: dict of ``cls`` as {flat option name: value}, nested groups flattened."""
    out = {}
    for o in options_of(cls):
        value, found = section_dict, True
        for attr in o.path:
            if not isinstance(value, dict) or attr not in value:
                found = False
                break
            value = value[attr]
        if found:
            out[o.name] = value
    return out


# Named recipes, as stylegan2-ada-pytorch's --cfg: values that replace the defaults before --config and the
# flags apply. Each was measured; docs/results/ada.md has the runs behind them.
PRESETS: dict[str, dict[str, Any]] = {
    "small32": {
        "help": "32-px StyleGAN2 for a small or medium dataset on little compute (the Fashion-MNIST base of "
                "docs/results/ada.md): 64 channels, 2 mapping layers, minibatch-stddev over the whole batch, "
                "gamma 0.1, learning rates 0.002, no style mixing, x-flips, ADA (p adjusts in 100 kimg), 150 kimg.",
        "model": {"resolution": 32, "mapping_layers": 2, "channel_base": 2048, "channel_max": 64, "mbstd_group": 32},
        "train": {"kimg": 150.0, "batch": 32, "lr_g": 0.002, "lr_d": 0.002, "r1_gamma": 0.1, "style_mixing": 0.0,
                  "xflip": True, "aug": "ada", "ada_kimg": 100.0},
    },
}


def preset_values(name: str) -> dict[str, Any]:
    """The {'model': ..., 'train': ...} values of preset ``name``; ConfigError naming the known ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return {"model": dict(PRESETS[name]["model"]), "train": dict(PRESETS[name]["train"]), "preset": name}


# Allowed ranges of the numeric options, checked before anything is built or written:
# (lowest, highest, lowest allowed itself). None leaves that side open; every float must be finite.
_RANGES = {
    "model": {"z_dim": (1, None, True), "w_dim": (1, None, True), "mapping_layers": (1, None, True),
              "mapping_lr_mul": (0, None, False), "channel_base": (1, None, True), "channel_max": (1, None, True),
              "mbstd_group": (1, None, True), "conv_clamp": (0, None, False), "plane_resolution": (4, None, True),
              "plane_channels": (1, None, True), "decoder_hidden": (1, None, True), "feature_channels": (3, None, True),
              "sr_channels": (1, None, True), "coarse_samples": (1, None, True), "fine_samples": (0, None, True)},
    "train": {"kimg": (0, None, False), "batch": (1, None, True), "lr_g": (0, None, False), "lr_d": (0, None, False),
              "beta1": (0, 1, True), "beta2": (0, 1, True), "r1_gamma": (0, None, True), "r1_interval": (0, None, True),
              "pl_weight": (0, None, True), "pl_interval": (1, None, True), "pl_batch_shrink": (1, None, True),
              "pl_decay": (0, 1, True), "style_mixing": (0, 1, True), "ema_kimg": (0, None, True),
              "ema_rampup": (0, None, True), "workers": (0, None, True), "tick_kimg": (0, None, False),
              "snapshot_kimg": (0, None, False), "keep_ckpts": (1, None, True), "grid_size": (1, 1024, True),
              "link_interval": (1, None, True), "link_alpha": (0, None, False), "link_lambda_in": (0, None, True),
              "link_lambda_out": (0, None, True), "link_strength": (0, None, True), "link_target": (0, None, False),
              "link_batch": (1, None, True), "link_shared_axes": (0, None, True),
              "link_budget": (3, None, True), "link_start_kimg": (0, None, True),
              "link_ramp_kimg": (0, None, True), "link_lr": (0, None, False), "gpc_swap": (0, 1, True),
              "link_fakes": (0, 1, True), "aug_p": (0, 1, True), "aug_target": (0, 1, False),
              "ada_kimg": (0, None, False), "ada_interval": (1, None, True)},
}


def _flag(section_cls, name: str) -> str:
    return _option(section_cls, name).flag


def validate_for_training(config: "RunConfig") -> None:
    """Raises ConfigError naming the flag when a numeric option is out of its range (or NaN/Inf),
    or the resolution is not a power of two from 16 to 1024; run before a run builds or writes
    anything. Loading a checkpoint does not call it, so older configs stay readable."""
    import math

    res = config.model.resolution
    if isinstance(res, bool) or not isinstance(res, int) or not 16 <= res <= 1024 or res & (res - 1):
        raise ConfigError(f"--res must be a power of two from 16 to 1024, got {res!r}")
    for section, ranges in _RANGES.items():
        obj = getattr(config, section)
        for name, (low, high, low_ok) in ranges.items():
            value = get_option(obj, name)
            if value is None:
                continue
            flag = _flag(type(obj), name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{flag} must be a finite number, got {value}")
            if (value < low if low_ok else value <= low) or (high is not None and value > high):
                bound = f"{'at least' if low_ok else 'above'} {low}" + (f" and at most {high}" if high else "")
                raise ConfigError(f"{flag} must be {bound}, got {value}")
    t = config.train
    if t.aug == "fixed" and t.aug_p <= 0:
        raise ConfigError("--aug fixed needs the probability: add --aug-p P with 0 < P <= 1")
    if t.aug == "noaug" and t.aug_p > 0:
        raise ConfigError(f"--aug-p {t.aug_p} has no effect without augmentation: add --aug fixed or --aug ada")


def validate_run(config: "RunConfig", partition) -> None:
    """The rules across the model, the training options and the links, once the model is known (a
    fine-tune takes its base's): raises ConfigError naming the options that do not go together.
    ``partition``: the run's LatentPartition (config.partition())."""
    t, kind = config.train, config.model.kind
    if kind == "3d" and t.compile != "none":
        raise ConfigError("--compile supports 2D models only")
    if kind != "3d" and any(link.region.is_volume for link in partition):
        raise ConfigError("3D-box regions (box3d) need a 3D generator (--kind 3d); this model is 2D")
    if t.link.samples == "factorized" and config.allow_link_overlap and len(partition) > 1:  # 'auto' avoids it
        raise ConfigError("--link-samples factorized counts on disjoint regions (each link's outside term "
                          "stands in for the other links' share of its inside term); with overlapping "
                          "regions use --link-samples all")


def _float(v):
    # YAML 1.1 reads "1e-3" as a string; accept it where a float is expected.
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def from_dict(cls, d: dict[str, Any], source: str = "config"):
    """Builds dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping of options (model:, train:, links:), got "
                          f"{type(d).__name__}")
    try:
        return dacite.from_dict(cls, d, config=dacite.Config(strict=True, type_hooks={float: _float}))
    except dacite.UnexpectedDataError as e:
        raise ConfigError(f"{source}: unknown option(s) {sorted(e.keys)}; see `linkgan train --help` "
                          "for the valid names") from None
    except dacite.WrongTypeError as e:
        raise ConfigError(f"{source}: option '{e.field_path}' must be of type {e.field_type}, "
                          f"got {e.value!r}") from None
    except dacite.DaciteError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Reads a YAML or JSON config file into a dict (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML/JSON: {e}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {path} holds a {type(data).__name__}; it must be a mapping of sections "
                          "(model:, train:, links:), e.g. 'train: {kimg: 20}'")
    return migrate_config(data or {})


def merge_dicts(base: dict, override: dict) -> dict:
    """Recursively merges ``override`` into a copy of ``base``."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = v
    return out
