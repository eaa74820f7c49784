"""Test stand-ins for StyleGAN2 files made elsewhere, written without any NVIDIA or rosinality code.

``nvidia_pickle`` writes a pickle with the opcode structure of a stylegan2-ada-pytorch snapshot:
a dict of persistent-class records (``torch_utils.persistence._reconstruct_persistent_obj``
called on a dict with the class name, embedded source and the module's ``__dict__``), whose
parameters and buffers pickle as torch tensors do (``_rebuild_parameter``,
``_rebuild_tensor_v2``, ``torch.storage._load_from_bytes``) and whose kwargs are
``dnnlib.util.EasyDict``. The weights come from a linkgan network with the official numerics,
renamed to the official names, so an import must give back the same network.

``rosinality_checkpoint`` does the same for a rosinality ``torch.save`` checkpoint.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import pickle
import sys
import types

import torch

from linkgan.networks import Discriminator, Generator

FAKE_SOURCE = "# stand-in for the network source an NVIDIA pickle embeds; never executed\n"


@contextlib.contextmanager
def fake_nvidia_modules():
    """Registers stand-ins for ``torch_utils.persistence`` and ``dnnlib.util`` while pickling, so that
    pickle writes those global names; removed afterwards (the reader must not need them)."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - only its name is pickled
        raise AssertionError("the importer must not call the pickled reconstruct function")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    names = {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
             "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}
    saved = {k: sys.modules.get(k) for k in names}
    sys.modules.update(names)
    try:
        yield persistence, EasyDict
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Record:
    """Pickles as NVIDIA's persistent classes do: a call of _reconstruct_persistent_obj(meta)."""

    def __init__(self, class_name: str, **attrs):
        self.class_name = class_name
        self.state = {"training": False, "_parameters": collections.OrderedDict(),
                      "_buffers": collections.OrderedDict(), "_non_persistent_buffers_set": set(),
                      "_modules": collections.OrderedDict(), **attrs}

    def __reduce__(self):
        fn = sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj
        meta = {"type": "class", "version": 4, "module_src": FAKE_SOURCE, "class_name": self.class_name,
                "state": self.state}
        return fn, (meta,)


def _param(t: torch.Tensor) -> torch.nn.Parameter:
    return torch.nn.Parameter(t.detach().clone(), requires_grad=False)


def _fc(weight, bias, lr_mul=1.0):
    r = Record("FullyConnectedLayer", weight_gain=lr_mul / math.sqrt(weight.shape[1]), bias_gain=lr_mul,
               activation="lrelu")
    r.state["_parameters"].update(weight=_param(weight), bias=_param(bias))
    return r


FILTER = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64


def generator_record(G: Generator, EasyDict, c_dim: int = 0, conv_clamp=None, filter_=FILTER,
                     synthesis_class: str = "SynthesisNetwork") -> Record:
    """The record tree of an official skip Generator holding ``G``'s weights."""
    sd = G.state_dict()
    lr_mul = G.mapping.layers[0].bias_gain
    mapping = Record("MappingNetwork", z_dim=G.z_dim, c_dim=c_dim, w_dim=G.w_dim, num_ws=G.num_ws,
                     num_layers=len(G.mapping.layers), w_avg_beta=0.995)
    for i in range(len(G.mapping.layers)):
        mapping.state["_modules"][f"fc{i}"] = _fc(sd[f"mapping.layers.{i}.weight"], sd[f"mapping.layers.{i}.bias"],
                                                 lr_mul)
    mapping.state["_buffers"]["w_avg"] = sd["mapping.w_avg"].clone()
    synthesis = Record(synthesis_class, w_dim=G.w_dim, img_resolution=G.resolution, img_channels=3)
    for b, block in enumerate(G.synthesis.blocks):
        res = block.resolution
        p = f"synthesis.blocks.{b}."
        rec = Record("SynthesisBlock", resolution=res, in_channels=0 if res == 4 else 1, architecture="skip",
                     is_last=res == G.resolution, w_dim=G.w_dim)
        rec.state["_buffers"]["resample_filter"] = filter_.clone()
        if res == 4:
            rec.state["_parameters"]["const"] = _param(sd[p + "const"])
        for conv in ("conv0", "conv1"):
            if p + conv + ".conv.weight" not in sd:
                continue
            layer = Record("SynthesisLayer", resolution=res, up=2 if conv == "conv0" and res > 4 else 1,
                           conv_clamp=conv_clamp, use_noise=True, activation="lrelu")
            layer.state["_modules"]["affine"] = _fc(sd[p + conv + ".conv.affine.weight"], sd[p + conv + ".conv.affine.bias"])
            layer.state["_parameters"].update(weight=_param(sd[p + conv + ".conv.weight"]),
                                              noise_strength=_param(sd[p + conv + ".noise.strength"]),
                                              bias=_param(sd[p + conv + ".bias"]))
            layer.state["_buffers"]["noise_const"] = sd[p + conv + ".noise.const_noise"].clone()
            rec.state["_modules"][conv] = layer
        rgb = Record("ToRGBLayer", conv_clamp=conv_clamp)
        rgb.state["_modules"]["affine"] = _fc(sd[p + "torgb.conv.affine.weight"], sd[p + "torgb.conv.affine.bias"])
        rgb.state["_parameters"].update(weight=_param(sd[p + "torgb.conv.weight"]), bias=_param(sd[p + "torgb.bias"]))
        rec.state["_modules"]["torgb"] = rgb
        synthesis.state["_modules"][f"b{res}"] = rec
    kwargs = EasyDict(z_dim=G.z_dim, c_dim=c_dim, w_dim=G.w_dim, img_resolution=G.resolution, img_channels=3,
                      mapping_kwargs=EasyDict(num_layers=len(G.mapping.layers)),
                      synthesis_kwargs=EasyDict(channel_base=1, channel_max=1, num_fp16_res=0, conv_clamp=conv_clamp))
    g = Record("Generator", z_dim=G.z_dim, c_dim=c_dim, w_dim=G.w_dim, img_resolution=G.resolution, img_channels=3,
               num_ws=G.num_ws, _init_args=(), _init_kwargs=kwargs)
    g.state["_modules"].update(synthesis=synthesis, mapping=mapping)
    return g


def discriminator_record(D: Discriminator, EasyDict, conv_clamp=None, mbstd_channels: int = 1) -> Record:
    """The record tree of an official resnet Discriminator holding ``D``'s weights."""
    sd = D.state_dict()

    def conv(prefix, clamp=conv_clamp, bias=True):
        r = Record("Conv2dLayer", conv_clamp=clamp)
        r.state["_parameters"]["weight"] = _param(sd[prefix + ".weight"])
        r.state["_parameters"]["bias"] = _param(sd[prefix + ".bias"]) if bias else None
        return r

    d = Record("Discriminator", c_dim=0, img_resolution=D.resolution, img_channels=3, _init_args=(),
               _init_kwargs=EasyDict(c_dim=0, img_resolution=D.resolution, img_channels=3, conv_clamp=conv_clamp))
    for i, _ in enumerate(D.blocks):
        res = D.resolution >> i
        rec = Record("DiscriminatorBlock", resolution=res, in_channels=0 if i == 0 else 1, architecture="resnet")
        rec.state["_buffers"]["resample_filter"] = FILTER.clone()
        if i == 0:
            rec.state["_modules"]["fromrgb"] = conv("from_rgb")
        rec.state["_modules"]["conv0"] = conv(f"blocks.{i}.conv0")
        rec.state["_modules"]["conv1"] = conv(f"blocks.{i}.conv1")
        rec.state["_modules"]["skip"] = conv(f"blocks.{i}.skip", clamp=None, bias=False)
        d.state["_modules"][f"b{res}"] = rec
    epi = Record("DiscriminatorEpilogue", in_channels=sd["conv.weight"].shape[0], cmap_dim=0, resolution=4,
                 architecture="resnet")
    epi.state["_modules"]["mbstd"] = Record("MinibatchStdLayer", group_size=D.mbstd.group_size,
                                            num_channels=mbstd_channels)
    epi.state["_modules"]["conv"] = conv("conv")
    epi.state["_modules"]["fc"] = _fc(sd["fc.weight"], sd["fc.bias"])
    epi.state["_modules"]["out"] = _fc(sd["out.weight"], sd["out.bias"])
    d.state["_modules"]["b4"] = epi
    return d


def tiny_networks(res: int = 16, seed: int = 0, conv_clamp=None):
    """A small official-numerics G and D with every bias, noise strength and w_avg nonzero."""
    torch.manual_seed(seed)
    G = Generator(resolution=res, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16,
                  conv_clamp=conv_clamp).eval()
    D = Discriminator(resolution=res, channel_base=128, channel_max=16, conv_clamp=conv_clamp).eval()
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("strength") or name.endswith("bias"):
                    p.normal_(0, 0.2)
        G.mapping.w_avg.normal_(0, 0.5)
    return G, D


def nvidia_pickle(path, G, D=None, G_train=None, with_ema: bool = True, **record_options) -> None:
    """Writes a stylegan2-ada-pytorch-shaped snapshot pickle of linkgan networks to ``path``."""
    with fake_nvidia_modules() as (_, EasyDict):
        data = {"G": generator_record(G_train if G_train is not None else G, EasyDict, **record_options)}
        if D is not None:
            data["D"] = discriminator_record(D, EasyDict, conv_clamp=record_options.get("conv_clamp"))
        if with_ema:
            data["G_ema"] = generator_record(G, EasyDict, **record_options)
        data["augment_pipe"] = None
        data["training_set_kwargs"] = EasyDict(path="/data/faces.zip", resolution=G.resolution, use_labels=False)
        with open(path, "wb") as f:
            pickle.dump(data, f)


def rosinality_state(G: Generator) -> dict:
    """G's weights under rosinality's Generator names and shapes."""
    sd = G.state_dict()
    out = {}
    for i in range(len(G.mapping.layers)):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.layers.{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.layers.{i}.bias"]
    out["input.input"] = sd["synthesis.blocks.0.const"][None]
    kernel = FILTER * 4

    def styled(dst, src, up=False):
        out[f"{dst}.conv.weight"] = sd[f"{src}.conv.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.conv.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.conv.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise.strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        if up:
            out[f"{dst}.conv.blur.kernel"] = kernel

    def rgb(dst, src, up):
        out[f"{dst}.conv.weight"] = sd[f"{src}.torgb.conv.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.torgb.conv.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.torgb.conv.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.torgb.bias"].reshape(1, -1, 1, 1)
        if up:
            out[f"{dst}.upsample.kernel"] = kernel

    styled("conv1", "synthesis.blocks.0.conv1")
    rgb("to_rgb1", "synthesis.blocks.0", False)
    noises = [sd["synthesis.blocks.0.conv1.noise.const_noise"]]
    for b in range(1, len(G.synthesis.blocks)):
        styled(f"convs.{2 * (b - 1)}", f"synthesis.blocks.{b}.conv0", up=True)
        styled(f"convs.{2 * (b - 1) + 1}", f"synthesis.blocks.{b}.conv1")
        rgb(f"to_rgbs.{b - 1}", f"synthesis.blocks.{b}", True)
        noises += [sd[f"synthesis.blocks.{b}.conv0.noise.const_noise"], sd[f"synthesis.blocks.{b}.conv1.noise.const_noise"]]
    for i, n in enumerate(noises):
        out[f"noises.noise_{i}"] = n[None, None]
    return {k: v.clone() for k, v in out.items()}


def rosinality_d_state(D: Discriminator) -> dict:
    sd = D.state_dict()
    out = {"convs.0.0.weight": sd["from_rgb.weight"], "convs.0.1.bias": sd["from_rgb.bias"],
           "final_conv.0.weight": sd["conv.weight"], "final_conv.1.bias": sd["conv.bias"],
           "final_linear.0.weight": sd["fc.weight"], "final_linear.0.bias": sd["fc.bias"],
           "final_linear.1.weight": sd["out.weight"], "final_linear.1.bias": sd["out.bias"]}
    for i in range(len(D.blocks)):
        k = i + 1
        out.update({f"convs.{k}.conv1.0.weight": sd[f"blocks.{i}.conv0.weight"],
                    f"convs.{k}.conv1.1.bias": sd[f"blocks.{i}.conv0.bias"],
                    f"convs.{k}.conv2.0.kernel": FILTER * 1.0,
                    f"convs.{k}.conv2.1.weight": sd[f"blocks.{i}.conv1.weight"],
                    f"convs.{k}.conv2.2.bias": sd[f"blocks.{i}.conv1.bias"],
                    f"convs.{k}.skip.0.kernel": FILTER * 1.0,
                    f"convs.{k}.skip.1.weight": sd[f"blocks.{i}.skip.weight"]})
    return {k: v.clone() for k, v in out.items()}


def rosinality_checkpoint(path, G, D=None, extra: dict | None = None, with_latent_avg: bool = True) -> None:
    """Writes a rosinality-shaped train.py checkpoint (torch.save) of linkgan networks."""
    ckpt = {"g": rosinality_state(G), "g_ema": rosinality_state(G),
            "args": argparse.Namespace(size=G.resolution, channel_multiplier=2, batch=16, iter=800000)}
    if D is not None:
        ckpt["d"] = rosinality_d_state(D)
    if with_latent_avg:
        ckpt["latent_avg"] = G.mapping.w_avg.clone()
    ckpt.update(extra or {})
    torch.save(ckpt, path)
