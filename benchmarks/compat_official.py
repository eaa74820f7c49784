"""Conformance of linkgan's StyleGAN2 with the reference implementations, as JSON.

Takes checkouts of NVlabs/stylegan2-ada-pytorch (``--official``) and, optionally,
rosinality/stylegan2-pytorch (``--rosinality``); neither is part of linkgan, and nothing they
write is kept. For each resolution (``--res``, default 32 and 256) and each code base it:

1. builds their networks with random weights (biases, noise strengths and the average w
   perturbed too, so that every path of the computation matters);
2. saves them as their training scripts do: NVIDIA's ``training_loop.py`` pickles
   ``dict(G, D, G_ema, augment_pipe, training_set_kwargs)`` of eval-mode CPU copies;
   rosinality's ``train.py`` ``torch.save``s the state dicts with its options;
3. imports the file with ``linkgan.importer.import_model`` (as ``linkgan import`` does) and
   compares, in fp32 on the CPU, with the same z (4 samples) and constant noise: mapping
   (truncation 1 and 0.7), synthesis, the whole G_ema and D's logits. Each linkgan modulated
   conv formulation is compared with the reference's matching one: ``grouped`` (one weight per
   sample) with NVIDIA's eval-mode fused conv, ``scaled`` (activations scaled around one shared
   conv) with its training-mode path (rosinality's ``fused=False``). How far the reference's own two paths are apart
   (``reference_fused_vs_unfused``) is the scale of fp32 rounding for these networks (the
   reference casts to fp32 internally, so a float64 comparison is not possible).

``--speed`` also times training at 32 px, 64 channels, batch 32, both codes in turns
(``--rounds``, median round): linkgan's ``Trainer.train_step`` against NVIDIA's
``StyleGAN2Loss`` phases run the way ``training_loop.py`` runs them (Gmain, Greg every 4,
Dmain, Dreg every 16, the lazy-regularization Adam settings, the G_ema update), with equal
settings: z and w 512, 8 mapping layers, R1 gamma 0.0064, style mixing 0.9, no path length,
fp32.

Usage:
  git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada
  git clone https://github.com/rosinality/stylegan2-pytorch /tmp/rosinality
  python benchmarks/compat_official.py --official /tmp/sg2ada --rosinality /tmp/rosinality [--speed]
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from linkgan.checkpoint import load_checkpoint, load_module
from linkgan.config import RunConfig
from linkgan.importer import import_model
from linkgan.networks.build import build_discriminator, build_generator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import timed_steps, warm_trainer  # noqa: E402  (the benchmark beside this one)

BATCH = 4


def perturb(module: torch.nn.Module, names=("bias", "noise_strength", "noise.weight", "w_avg")) -> None:
    """Small random values where fresh networks hold zeros (biases, noise strengths, w_avg)."""
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if any(name.endswith(n) for n in names):
                t.add_(torch.randn_like(t) * 0.05)


def linkgan_nets(path: Path, dtype=torch.float32) -> dict:
    ckpt = load_checkpoint(path)
    model = RunConfig.from_dict(ckpt.config).model
    nets = {}
    for name in ("G_ema", "D"):
        net = build_generator(model) if name == "G_ema" else build_discriminator(model)
        load_module(net, ckpt, name)
        nets[name] = net.eval().to(dtype)
    return nets


def set_impl(G: torch.nn.Module, impl: str) -> None:
    for m in G.modules():
        if hasattr(m, "impl"):
            m.impl = impl


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


# ------------------------------------------------------------------------------ NVIDIA
def nvidia_case(official: Path, res: int, channel_base: int, channel_max: int, tmp: Path,
                dtype=torch.float32) -> dict:
    sys.path.insert(0, str(official))
    from training.networks import Discriminator, Generator

    torch.manual_seed(res)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=0,
                                        conv_clamp=256))
    D = Discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=channel_base,
                      channel_max=channel_max, num_fp16_res=0, conv_clamp=256,
                      epilogue_kwargs=dict(mbstd_group_size=4))
    perturb(G)
    perturb(D)
    G_ema = copy.deepcopy(G)
    snapshot = {"training_set_kwargs": {"path": "random.zip", "resolution": res}}
    for name, module in (("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", None)):
        snapshot[name] = None if module is None else copy.deepcopy(module).eval().requires_grad_(False).cpu()
    pkl = tmp / f"network-snapshot-{res}.pkl"
    with open(pkl, "wb") as f:
        pickle.dump(snapshot, f)
    out = import_model(pkl, tmp / f"nvidia-{res}.safetensors", force=True)

    ref_G, ref_D = snapshot["G_ema"].to(dtype), snapshot["D"].to(dtype)
    ours = linkgan_nets(out, dtype)
    z = torch.randn(BATCH, 512, generator=torch.Generator().manual_seed(1)).to(dtype)
    c = torch.zeros(BATCH, 0, dtype=dtype)
    img = torch.randn(BATCH, 3, res, res, generator=torch.Generator().manual_seed(2)).to(dtype)
    result = {}
    with torch.no_grad():
        for psi in (1.0, 0.7):
            result[f"mapping_psi{psi}"] = max_diff(ref_G.mapping(z, c, truncation_psi=psi),
                                                   ours["G_ema"].mapping(z, truncation_psi=psi))
        ws = ref_G.mapping(z, c)
        paths = {}
        for impl, train_mode in (("grouped", False), ("scaled", True)):
            ref_G.train(train_mode)  # the reference fuses its modconv in eval mode only
            set_impl(ours["G_ema"], impl)
            ref_img = paths[impl] = ref_G.synthesis(ws, noise_mode="const", force_fp32=True)
            result[f"synthesis_{impl}"] = max_diff(ref_img, ours["G_ema"].synthesis(ws, noise_mode="const"))
            ref_full = ref_G.synthesis(ref_G.mapping(z, c, truncation_psi=0.7, skip_w_avg_update=True),
                                       noise_mode="const", force_fp32=True)
            result[f"G_ema_{impl}"] = max_diff(ref_full, ours["G_ema"](z, truncation_psi=0.7, noise_mode="const"))
            result["image_max_abs"] = float(ref_img.abs().max())
        result["reference_fused_vs_unfused"] = max_diff(paths["grouped"], paths["scaled"])
        ref_G.eval()
        ref_logits = ref_D(img, c, force_fp32=True)
        result["D_logits"] = max_diff(ref_logits, ours["D"](img))
        result["logits_max_abs"] = float(ref_logits.abs().max())
    sys.path.remove(str(official))
    return result


# ------------------------------------------------------------------------------ rosinality
def import_rosinality(path: Path):
    """rosinality's model module, with its CUDA extension builds (which fail without nvcc) skipped:
    its ops then run their native PyTorch paths on the CPU."""
    import torch.utils.cpp_extension as cpp

    build = cpp.load
    cpp.load = lambda *a, **k: None
    sys.path.insert(0, str(path))
    try:
        import model as rosinality_model
    finally:
        cpp.load = build
        sys.path.remove(str(path))
    return rosinality_model


def rosinality_case(path: Path, res: int, multiplier: int, tmp: Path, dtype=torch.float32) -> dict:
    ros = import_rosinality(path)
    torch.manual_seed(res + 1)
    g = ros.Generator(res, 512, 8, channel_multiplier=multiplier)
    d = ros.Discriminator(res, channel_multiplier=multiplier)
    perturb(g)
    perturb(d)
    g_ema = copy.deepcopy(g).eval()
    with torch.no_grad():
        latent_avg = g_ema.style(torch.randn(4096, 512)).mean(0)
    args = argparse.Namespace(size=res, channel_multiplier=multiplier, latent=512, n_mlp=8, batch=16, iter=800000,
                              r1=10, path_regularize=2, mixing=0.9, lr=0.002)
    g_optim = torch.optim.Adam(g.parameters(), lr=0.002, betas=(0.0, 0.99))
    d_optim = torch.optim.Adam(d.parameters(), lr=0.002, betas=(0.0, 0.99))
    pt = tmp / f"{res}.pt"
    torch.save({"g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(), "g_optim": g_optim.state_dict(),
                "d_optim": d_optim.state_dict(), "args": args, "ada_aug_p": 0.0, "latent_avg": latent_avg}, pt)
    out = import_model(pt, tmp / f"rosinality-{res}.safetensors", force=True)
    g_ema, d = g_ema.to(dtype), d.eval().to(dtype)
    latent_avg = latent_avg.to(dtype)
    ours = linkgan_nets(out, dtype)
    z = torch.randn(BATCH, 512, generator=torch.Generator().manual_seed(1)).to(dtype)
    img = torch.randn(BATCH, 3, res, res, generator=torch.Generator().manual_seed(2)).to(dtype)
    result = {}
    with torch.no_grad():
        w = g_ema.style(z)
        for psi in (1.0, 0.7):
            ref = latent_avg + psi * (w - latent_avg)
            result[f"mapping_psi{psi}"] = max_diff(ref[:, None].expand(-1, g_ema.n_latent, -1),
                                                   ours["G_ema"].mapping(z, truncation_psi=psi))
        ws = w[:, None].repeat(1, g_ema.n_latent, 1)
        paths = {}
        for impl, fused in (("grouped", True), ("scaled", False)):
            for m in g_ema.modules():  # the reference's two modulated-conv formulations
                if hasattr(m, "fused"):
                    m.fused = fused
            set_impl(ours["G_ema"], impl)
            ref_img, _ = g_ema([ws], input_is_latent=True, randomize_noise=False)
            paths[impl] = ref_img
            result[f"synthesis_{impl}"] = max_diff(ref_img, ours["G_ema"].synthesis(ws, noise_mode="const"))
            ref_full, _ = g_ema([z], truncation=0.7, truncation_latent=latent_avg, randomize_noise=False)
            result[f"G_ema_{impl}"] = max_diff(ref_full, ours["G_ema"](z, truncation_psi=0.7, noise_mode="const"))
        result["image_max_abs"] = float(paths["grouped"].abs().max())
        result["reference_fused_vs_unfused"] = max_diff(paths["grouped"], paths["scaled"])
        ref_logits = d(img)
        result["D_logits"] = max_diff(ref_logits, ours["D"](img))
        result["logits_max_abs"] = float(ref_logits.abs().max())
        # rosinality's ops run in the input's dtype on the CPU, so the same comparison in float64
        # separates a different computation from fp32 rounding (the mappings cast z to fp32, and both Ds their epilogue).
        g64 = g_ema.double()
        ours64 = {"G_ema": ours["G_ema"].double()}
        ws64, f64 = ws.double(), {}
        for impl, fused in (("grouped", True), ("scaled", False)):
            for m in g64.modules():
                if hasattr(m, "fused"):
                    m.fused = fused
            set_impl(ours64["G_ema"], impl)
            ref_img, _ = g64([ws64], input_is_latent=True, randomize_noise=False)
            f64[f"synthesis_{impl}"] = max_diff(ref_img, ours64["G_ema"].synthesis(ws64, noise_mode="const"))
        result["float64"] = f64
    return result


# ------------------------------------------------------------------------------ speed
def linkgan_trainer(res: int, batch: int, cmax: int, numerics: str = "official"):
    """train_speed.py's warmed-up trainer (random images in memory), with the official run's R1 gamma."""
    trainer = warm_trainer(argparse.Namespace(res=res, batch=batch, cmax=cmax, device="cpu"), numerics=numerics,
                           r1_gamma=0.0064)
    return lambda n: timed_steps(trainer, n)


def official_trainer(official: Path, res: int, batch: int, cmax: int):
    """NVIDIA's phases as training_loop.py runs them, on the CPU, without its data pipeline."""
    sys.path.insert(0, str(official))
    from training.loss import StyleGAN2Loss
    from training.networks import Discriminator, Generator

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3, mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=cmax * res, channel_max=cmax, num_fp16_res=0,
                                        conv_clamp=None)).train().requires_grad_(False)
    D = Discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=cmax * res, channel_max=cmax,
                      num_fp16_res=0, conv_clamp=None,
                      epilogue_kwargs=dict(mbstd_group_size=4)).train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    loss = StyleGAN2Loss(device=torch.device("cpu"), G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                         r1_gamma=0.0064, pl_weight=0, style_mixing_prob=0.9)
    phases = []
    for name, module, interval in (("G", G, 4), ("D", D, 16)):
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=0.0025 * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
        phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
    real = (torch.randint(0, 256, (batch, 3, res, res)).float() / 127.5 - 1)
    c = torch.zeros(batch, 0)
    state = {"nimg": 0}

    def steps(n: int) -> None:
        for step in range(n):
            for name, module, opt, interval in phases:
                if step % interval:
                    continue
                opt.zero_grad(set_to_none=True)
                module.requires_grad_(True)
                loss.accumulate_gradients(phase=name, real_img=real, real_c=c, gen_z=torch.randn(batch, 512),
                                          gen_c=c, sync=True, gain=interval)
                module.requires_grad_(False)
                for p in module.parameters():
                    if p.grad is not None:
                        torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
                opt.step()
            with torch.no_grad():
                state["nimg"] += batch
                beta = 0.5 ** (batch / max(min(10000, state["nimg"] * 0.05), 1e-8))
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.copy_(p.lerp(p_ema, beta))
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)

    steps(2)
    sys.path.remove(str(official))
    return steps


def speed(official: Path, rounds: int, steps: int = 16, res: int = 32, batch: int = 32, cmax: int = 64) -> dict:
    arms = {"linkgan_official_numerics": linkgan_trainer(res, batch, cmax),
            "linkgan_legacy_numerics": linkgan_trainer(res, batch, cmax, "legacy"),
            "stylegan2_ada_pytorch": official_trainer(official, res, batch, cmax)}
    times = {name: [] for name in arms}
    for k in range(rounds):
        order = list(arms) if k % 2 == 0 else list(reversed(arms))
        for name in order:
            t = time.perf_counter()
            arms[name](steps)
            times[name].append(batch * steps / (time.perf_counter() - t))
    out = {name: {"img_per_s": statistics.median(v), "rounds_img_per_s": v} for name, v in times.items()}
    ref = out["stylegan2_ada_pytorch"]["img_per_s"]
    out["ratio_linkgan_to_official"] = out["linkgan_official_numerics"]["img_per_s"] / ref
    out["ratio_legacy_to_official"] = out["linkgan_legacy_numerics"]["img_per_s"] / ref
    out["ratio_official_numerics_to_legacy"] = (out["linkgan_official_numerics"]["img_per_s"]
                                                / out["linkgan_legacy_numerics"]["img_per_s"])
    out["setup"] = {"res": res, "batch": batch, "channels": cmax, "steps_per_round": steps, "rounds": rounds,
                    "threads": torch.get_num_threads()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", required=True, type=Path, help="checkout of NVlabs/stylegan2-ada-pytorch")
    p.add_argument("--rosinality", type=Path, help="checkout of rosinality/stylegan2-pytorch")
    p.add_argument("--res", default="32,256", help="comma-separated resolutions")
    p.add_argument("--cmax-256", type=int, default=128,
                   help="channel_max at 256 px (the stylegan2 config's 512 takes minutes per case on 2 cores)")
    p.add_argument("--speed", action="store_true", help="also time both codes' training at 32 px, 64 channels")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    result = {"benchmark": "compat_official", "torch": torch.__version__, "tolerance": 1e-5, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for res in (int(r) for r in args.res.split(",")):
            cmax = 512 if res <= 64 else args.cmax_256
            case = {"stylegan2-ada-pytorch": {"channel_base": 32768, "channel_max": cmax,
                                              **nvidia_case(args.official, res, 32768, cmax, tmp)}}
            if args.rosinality:
                # channel_multiplier 2 (its default): 512 channels up to 64 px, then halving.
                case["rosinality"] = {"channel_multiplier": 2, **rosinality_case(args.rosinality, res, 2, tmp)}
            result["cases"][f"{res}px"] = case
    worst = [v for case in result["cases"].values() for code in
             ("stylegan2-ada-pytorch", "rosinality") if code in case
             for name, v in case[code].items() if name.startswith(("mapping", "synthesis", "G_ema", "D_"))]
    result["max_abs_diff_fp32"] = max(worst)
    result["within_tolerance"] = max(worst) <= 1e-5
    if args.speed:
        result["speed"] = speed(args.official, args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
