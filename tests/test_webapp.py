"""The web editor's logic without a browser (linkgan.webapp.session), recipes (linkgan.recipe),
`linkgan edit --recipe`, and the model that ships with linkgan."""

from __future__ import annotations

import io
import json
import re
import struct
import sys
import types
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from linkgan import LinkGANPipeline
from linkgan.cli import main
from linkgan.pretrained import pretrained_path
from linkgan.recipe import LatentImage, RecipeError, load_recipe, make_recipe, recipe_json, render_recipe
from linkgan.webapp.session import EditHistory, Editor, EditorError, EditState


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes of PNG whose header claims width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def pipe():
    return LinkGANPipeline.load("builtin:toyfaces", device="cpu")


@pytest.fixture
def editor(pipe, tmp_path):
    return Editor(pipe, checkpoint="builtin:toyfaces", out_dir=tmp_path / "web")


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# -- the shipped model -----------------------------------------------------------------------------
def test_shipped_model_is_small_half_precision_and_loads_as_float32(pipe):
    from safetensors import safe_open

    path = pretrained_path("toyfaces")
    assert path.stat().st_size <= 10 * 2**20
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        assert all(k.startswith("G_ema.") for k in keys)  # no G, D, optimizer or RNG state
        assert f.get_tensor("G_ema.synthesis.blocks.0.const").dtype == torch.float16
    assert pipe.links.names == ["eyes", "mouth"]
    assert all(p.dtype == torch.float32 for p in pipe.G.parameters())
    assert LinkGANPipeline.load(path, device="cpu").resolution == 32
    with pytest.raises(ValueError, match="built-in models: fmnist32-base, toyfaces, toyfaces-base"):
        LinkGANPipeline.load("builtin:nope")


def test_shipped_model_keeps_its_links_local(pipe, editor):
    """Resampling a link over the 12 gallery seeds changes its box far more than the rest of the
    image (the export measured locality 0.062 for the eyes, 0.041 for the mouth; vanilla ~1.6)."""
    for link in ("eyes", "mouth"):
        mask = pipe.links.region_mask(link, pipe.resolution)
        inside = outside = 0.0
        for seed in editor.gallery_seeds:
            h = editor.start(seed)
            change = (((editor.render(editor.resample(h, link)).image - editor.render(h).image) / 2) ** 2).mean(1)[0]
            inside += float(change[mask].mean())
            outside += float(change[~mask].mean())
        assert outside / inside < 0.15, (link, outside / inside)


# -- edits and undo ------------------------------------------------------------------------------
def test_undo_redo_walk_the_history(editor):
    h0 = editor.start(3)
    h1 = editor.resample(h0, "eyes")
    h2 = editor.perturb(h1, "mouth", 1.5)
    assert [e["op"] for e in h2.current.edits] == ["resample", "perturb"]
    u1 = editor.undo(h2)
    assert u1.current == h1.current
    assert editor.redo(u1).current == h2.current
    assert editor.undo(u1).current == h0.current
    with pytest.raises(EditorError, match="nothing to undo"):
        editor.undo(editor.undo(u1))
    # A new action after undo drops the redo stack.
    branched = editor.transplant(u1, "mouth", 9)
    with pytest.raises(EditorError, match="nothing to redo"):
        editor.redo(branched)
    # Picking another seed is undoable too.
    assert editor.undo(editor.pick_seed(h2, 5)).current == h2.current


def test_each_click_draws_a_new_edit_and_the_draws_are_reproducible(editor):
    h = editor.start(3)
    a = editor.resample(h, "eyes")
    b = editor.resample(a, "eyes")
    seeds = [e["edit_seed"] for e in b.current.edits]
    assert seeds[0] != seeds[1]
    assert editor.resample(h, "eyes").current == a.current  # same image, same n-th draw


def test_blend_slider_moves_between_before_and_after_and_merges_undo(editor):
    h0 = editor.start(3)
    h1 = editor.resample(h0, "eyes")
    moved = editor.set_mix(editor.set_mix(h1, "eyes", 0.5), "eyes", 0.0)
    assert moved.current.edits[-1]["mix"] == 0.0
    # Blend 0 is the image before the edit, bit for bit.
    assert torch.equal(editor.render(moved).image, editor.render(h0).image)
    assert not torch.equal(editor.render(h1).image, editor.render(h0).image)
    # One slider gesture is one undo step.
    assert editor.undo(moved).current == h1.current
    with pytest.raises(EditorError, match="resample or perturb the mouth first"):
        editor.set_mix(h1, "mouth", 0.5)


def test_strength_slider_rescales_the_latest_perturbation(editor):
    h = editor.perturb(editor.start(3), "eyes", 1.0, edit_seed=7)
    h2 = editor.set_strength(h, "eyes", 2.5)
    assert len(h2.current.edits) == 1 and h2.current.edits[0]["strength"] == 2.5
    # On another link it starts a new perturbation of that link.
    h3 = editor.set_strength(h2, "mouth", 0.5)
    assert [e["link"] for e in h3.current.edits] == ["eyes", "mouth"]


def test_bad_actions_give_messages(editor):
    h = editor.start(0)
    with pytest.raises(EditorError, match="unknown link 'nose'"):
        editor.resample(h, "nose")
    with pytest.raises(EditorError, match="whole number"):
        editor.pick_seed(h, -3)
    with pytest.raises(EditorError, match="whole number"):
        editor.pick_seed(h, "abc")


def test_shared_axes_are_offered_edited_and_replayed(pipe, tmp_path):
    """A model trained with --link-shared-axes: the editor offers 'shared' after the links, edits the
    last channels of W with it (every region may change, none is outlined for it), and its recipe
    replays; a model without shared axes refuses the name."""
    import copy

    from linkgan.partition import LatentPartition
    from linkgan.webapp.app import build_app

    model = copy.copy(pipe)
    model.links = LatentPartition.from_specs(pipe.links.to_specs(), pipe.links.w_dim, pipe.resolution, shared=128)
    editor = Editor(model, checkpoint="builtin:toyfaces", out_dir=tmp_path / "web")
    assert editor.link_names == [*pipe.links.names, "shared"] and editor.is_shared("shared")
    h = editor.resample(editor.start(3), "shared", edit_seed=5)
    h = editor.set_mix(h, "shared", 0.5)
    h = editor.transplant(h, "shared", 9)
    before = editor.render(editor.start(3)).image
    after = editor.render(h)
    assert (after.image - before).abs().amax() > 0.05  # the shared axes move the image
    recipe = editor.recipe(h)
    assert [e["link"] for e in recipe["edits"]] == ["shared", "shared"]
    assert torch.equal(render_recipe(model, recipe), after.image)
    # no outline for the shared axes: the regions drawn are the links' only
    assert set(editor.region_masks(after.image)) == set(pipe.links.names)
    text = json.dumps(build_app(editor).config, default=str)
    assert "resample-shared" in text and "no region owns" in text
    with pytest.raises(EditorError, match="unknown link 'shared'"):
        Editor(pipe, out_dir=tmp_path / "plain").resample(editor.start(3), "shared")
    with pytest.raises(RecipeError, match="'shared' is not a link of this model"):
        render_recipe(pipe, recipe)


# -- rendering -------------------------------------------------------------------------------------
def test_render_is_the_seed_image_with_outlined_regions(pipe, editor):
    r = editor.render(editor.start(3))
    assert torch.equal(r.image, pipe.generate([3], output="tensor"))
    disp = np.asarray(r.display)
    assert disp.shape == (32 * editor.scale, 32 * editor.scale, 3)
    # The eyes' box edge is drawn in the first link colour, the mouth's in the second.
    _, y0, _, y1 = pipe.links["eyes"].region.bounds()
    s = disp.shape[0]
    row = disp[int((y0 + y1) / 2 * s)]
    assert (row == (0, 220, 255)).all(axis=1).sum() >= 2
    assert (disp == (255, 64, 160)).all(axis=2).sum() > 50
    plain = np.asarray(editor.render(editor.start(3), outlines=False).display)
    assert not (plain == (0, 220, 255)).all(axis=2).any()


def test_semantic_link_outline_is_each_images_own_mask(tmp_path, monkeypatch):
    """A semantic link is outlined where its segmenter finds the region in the shown image."""
    (tmp_path / "brightseg.py").write_text(
        "from linkgan.segment import Segmenter\n\n"
        "class Bright(Segmenter):\n"
        "    def __init__(self):\n"
        "        super().__init__(['dark', 'bright'])\n\n"
        "    def predict(self, x):\n"
        "        return (x.mean(1) > 0.3).long()\n\n"
        "bright = Bright()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "links.yaml").write_text("links:\n  - {name: light, region: {semantic: [bright], segmenter: "
                                         "'brightseg:bright'}, axes: 64}\n")
    # A links file may name Python code only once the user trusts it (trust_segmenter).
    monkeypatch.setattr("linkgan.segment.adapters._TRUSTED_SPECS", {"brightseg:bright"})
    pipe = LinkGANPipeline.load("builtin:toyfaces", device="cpu").use_links(tmp_path / "links.yaml")
    editor = Editor(pipe, out_dir=tmp_path / "web")
    outlines = []
    for seed in (1, 4):
        r = editor.render(editor.start(seed))
        bright = (r.image.mean(1)[0] > 0.3).repeat_interleave(editor.scale, 0).repeat_interleave(editor.scale, 1)
        drawn = torch.from_numpy((np.asarray(r.display) == (0, 220, 255)).all(axis=2))
        assert drawn.sum() > 0
        outlines.append(drawn)
        # Outline pixels lie on the image's own bright region (the name label aside).
        assert (drawn & bright).sum() >= 0.9 * drawn.sum()
    assert not torch.equal(*outlines)


# -- recipes -------------------------------------------------------------------------------------
def test_recipe_replays_to_the_same_pixels_with_linkgan_edit(editor, tmp_path, capsys):
    h = editor.start(3)
    h = editor.resample(h, "eyes")
    h = editor.perturb(h, "mouth", 1.5)
    h = editor.set_mix(h, "mouth", 0.4)
    h = editor.transplant(h, "mouth", 9)
    png, js = editor.write_files(h, editor.render(h))
    recipe = json.loads(js.read_text())
    assert recipe["image"] == {"seed": 3}
    assert [e["op"] for e in recipe["edits"]] == ["resample", "perturb", "transplant"]
    assert recipe["edits"][1]["mix"] == 0.4
    assert recipe["checkpoint"] == "builtin:toyfaces"
    out = tmp_path / "replay.png"
    assert main(["edit", "--recipe", str(js), "--out", str(out)]) == 0
    assert np.array_equal(pixels(out), pixels(png))


def test_latent_recipe_holds_the_latent_exactly(pipe, editor, tmp_path):
    """A photo's latent (here: a seed's, moved off the mapping's range) and noise maps travel inside
    the recipe and replay bit for bit."""
    gen = torch.Generator().manual_seed(0)
    ws = pipe.latents([5]) + 0.3 * torch.randn(1, pipe.G.num_ws, pipe.G.w_dim, generator=gen)
    noise = [torch.randn(1, 1, layer.resolution, layer.resolution, generator=gen)
             for layer in pipe.G.synthesis.noise_inputs()]
    history = editor.resample(EditHistory(EditState(LatentImage(ws, noise, source="me.jpg"))), "eyes", edit_seed=4)
    png, js = editor.write_files(history, editor.render(history))
    recipe = load_recipe(js)
    assert recipe["image"]["source"] == "me.jpg"
    out = tmp_path / "replay.png"
    assert main(["edit", "--recipe", str(js), "--out", str(out), "--ckpt", "builtin:toyfaces"]) == 0
    assert np.array_equal(pixels(out), pixels(png))
    # Without the noise maps the image differs: they are part of the recipe.
    plain = make_recipe(LatentImage(ws), recipe["edits"], checkpoint="builtin:toyfaces")
    assert not torch.equal(render_recipe(pipe, plain), render_recipe(pipe, recipe))


def test_bad_recipes_name_the_problem(pipe, tmp_path):
    path = tmp_path / "r.json"
    good = make_recipe(3, [{"op": "resample", "link": "eyes", "edit_seed": 1}], checkpoint="builtin:toyfaces")
    for change, message in [({"edits": [{"op": "swirl", "link": "eyes"}]}, r"edits\[0\].op is 'swirl'"),
                            ({"edits": [{"op": "resample", "link": "eyes"}]}, r"needs edit_seed"),
                            ({"image": {}}, "exactly one of seed, latent or latent_file"),
                            ({"format": "png"}, "expected 'linkgan-recipe'")]:
        path.write_text(recipe_json({**good, **change}))
        with pytest.raises(RecipeError, match=message):
            load_recipe(path)
    with pytest.raises(RecipeError, match="'nose' is not a link of this model"):
        render_recipe(pipe, {**good, "edits": [{"op": "resample", "link": "nose", "edit_seed": 1}]})
    path.write_text("{not json")
    assert main(["edit", "--recipe", str(path), "--out", str(tmp_path / "x.png")]) == 2


@pytest.mark.parametrize("change, message", [
    ({"truncation": 1e300}, "truncation must be from -10 to 10"),
    ({"image": {"seed": 2 ** 64}}, "image.seed must be an integer from 0 to 4294967295"),
    ({"edits": [{"op": "resample", "link": "eyes", "edit_seed": 1, "mix": 1.5}]}, r"edits\[0\].mix must be from 0 to 1"),
    ({"edits": [{"op": "perturb", "link": "eyes", "edit_seed": 1, "strength": 1e308}]}, "strength must be from 0"),
])
def test_recipe_numbers_out_of_range_are_refused(pipe, tmp_path, capsys, change, message):
    good = make_recipe(3, [{"op": "resample", "link": "eyes", "edit_seed": 1}], checkpoint="builtin:toyfaces")
    path = tmp_path / "r.json"
    path.write_text(recipe_json({**good, **change}))
    assert main(["edit", "--recipe", str(path), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err and not (tmp_path / "x.png").exists()


def test_recipe_latents_are_checked_for_values_shapes_and_depth(pipe, tmp_path, capsys):
    ws = pipe.latents([5])
    noise = [torch.zeros(1, 1, layer.resolution, layer.resolution) for layer in pipe.G.synthesis.noise_inputs()]
    cases = []
    bad_ws = ws.clone()
    bad_ws[0, 0, 0] = float("nan")
    cases.append((make_recipe(LatentImage(bad_ws), []), "image.latent.ws holds NaN or Inf"))
    wrong = list(noise)
    wrong[2] = torch.zeros(1, 1, 3, 5)
    cases.append((make_recipe(LatentImage(ws, wrong), []), r"image.latent.noise\[2\] has shape \(1, 1, 3, 5\)"))
    for i, (recipe, message) in enumerate(cases):
        path = tmp_path / f"r{i}.json"
        path.write_text(recipe_json(recipe))
        assert main(["edit", "--recipe", str(path), "--ckpt", "builtin:toyfaces", "--out", str(tmp_path / "x.png")]) == 2
        assert re.search(message, capsys.readouterr().err)
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["edit", "--recipe", str(path), "--out", str(tmp_path / "x.png")]) == 2
    assert "nests its JSON too deeply" in capsys.readouterr().err


# -- uploads -------------------------------------------------------------------------------------
def test_bad_uploads_give_messages(tmp_path):
    editor = Editor(types.SimpleNamespace(resolution=32), out_dir=tmp_path / "web", max_upload_bytes=50_000)

    def upload(name, data):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(EditorError) as err:
            editor.check_upload(path)
        return str(err.value)

    assert "notes.txt is not an image" in upload("notes.txt", b"hello, world\n" * 20)
    assert "empty" in upload("empty.png", b"")
    noisy = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(noisy, "PNG")
    assert "the editor takes photos up to" in upload("big.png", noisy.getvalue())
    assert "decompression bomb" in upload("bomb.png", bomb_png())
    assert "decompression bomb" in upload("bomb2.png", bomb_png(9000, 9000))  # over our 40 MP, under PIL's
    ok = io.BytesIO()
    Image.new("RGBA", (40, 30), (10, 20, 30, 0)).save(ok, "PNG")
    damaged = ok.getvalue()[:60]
    assert "could not be read" in upload("cut.png", damaged)
    (tmp_path / "ok.png").write_bytes(ok.getvalue())
    img = editor.check_upload(tmp_path / "ok.png")
    assert img.mode == "RGB" and img.size == (40, 30) and img.getpixel((0, 0)) == (255, 255, 255)


def test_upload_is_inverted_and_edited_like_a_seed(pipe, editor, tmp_path, monkeypatch):
    """The upload path against the inversion API (a stand-in inverter): the photo's latent becomes the
    image, progress is reported, and its recipe replays."""
    calls = {}

    def invert(image, space="w+", steps=None, encoder="auto", seed=0, progress=None):
        calls.update(size=image.size, steps=steps, space=space)
        for step in range(3):
            progress(step + 1, 3)
        return types.SimpleNamespace(ws=pipe.latents([11]), noise=None)

    monkeypatch.setattr(pipe, "invert", invert, raising=False)
    photo = tmp_path / "face.png"
    Image.new("RGB", (64, 48), (200, 150, 120)).save(photo)
    seen = []
    h = editor.invert_photo(editor.start(0), photo, progress=lambda step, total: seen.append((step, total)))
    assert calls == {"size": (64, 48), "steps": editor.invert_steps, "space": "w+"} and seen[-1] == (3, 3)
    assert isinstance(h.current.image, LatentImage) and h.current.describe() == "photo face.png"
    assert torch.equal(editor.render(h).image, pipe.generate([11], output="tensor"))
    h = editor.resample(h, "mouth")
    png, js = editor.write_files(h, editor.render(h))
    out = tmp_path / "replay.png"
    assert main(["edit", "--recipe", str(js), "--out", str(out)]) == 0
    assert np.array_equal(pixels(out), pixels(png))
    with pytest.raises(EditorError, match="not an image"):
        (tmp_path / "x.png").write_text("no")
        editor.invert_photo(h, tmp_path / "x.png")


def test_upload_with_the_real_inversion(pipe, editor, tmp_path):
    if not callable(getattr(LinkGANPipeline, "invert", None)):
        pytest.skip("LinkGANPipeline.invert is not in this linkgan yet (the inversion issue)")
    photo = tmp_path / "face.png"
    pipe.generate([8])[0].resize((80, 80)).save(photo)
    editor.invert_steps = 5
    seen = []
    h = editor.invert_photo(editor.start(0), photo, progress=lambda step, total, *rest: seen.append(step))
    assert seen and isinstance(h.current.image, LatentImage)
    h = editor.resample(h, "eyes")
    png, js = editor.write_files(h, editor.render(h))
    out = tmp_path / "replay.png"
    assert main(["edit", "--recipe", str(js), "--out", str(out)]) == 0
    assert np.array_equal(pixels(out), pixels(png))


# -- serve -----------------------------------------------------------------------------------------
def test_serve_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve", "--port", "1"]) == 2
    assert 'pip install "linkgan[web]"' in capsys.readouterr().err


def test_serve_binds_loopback_by_default():
    from linkgan.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.ckpt) == ("127.0.0.1", 7860, "builtin:toyfaces")
