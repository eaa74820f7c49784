"""Semantic links: per-image region masks from a segmenter, in the regularizer, metrics and edits."""

import json
import sys

import pytest
import torch
import yaml

from conftest import tiny_run
from linkgan.cli import main
from linkgan.networks import UnconditionalGenerator
from linkgan.partition import LatentPartition
from linkgan.regions import RegionError, SemanticRegion
from linkgan.regularizer import link_loss
from linkgan.segment import trust_segmenter, untrust_segmenter

RES, W = 16, 32

# A segmenter written as a user would bring one: a Python callable named module:attr.
RED_SEGMENTER = '''
import torch
from linkgan.segment import Segmenter


class RedSegmenter(Segmenter):
    """Class 'red': pixels whose red channel is above 0 (in [-1, 1])."""

    def __init__(self):
        super().__init__(["other", "red"])

    def predict(self, x):
        return (x[:, 0] > 0).long()


red = RedSegmenter()
'''


@pytest.fixture
def red_spec(tmp_path, monkeypatch):
    (tmp_path / "redseg.py").write_text(RED_SEGMENTER)
    monkeypatch.syspath_prepend(str(tmp_path))
    trust_segmenter("redseg:red")  # the test's own code names it, as a user's script would
    yield "redseg:red"
    untrust_segmenter("redseg:red")
    sys.modules.pop("redseg", None)


def square(n: int, left: torch.Tensor) -> torch.Tensor:
    """Grey images (n, 3, RES, RES) with a red 4x4 square at the left (where ``left``) or the right."""
    img = torch.full((n, 3, RES, RES), -0.5)
    for i in range(n):
        x0 = 2 if left[i] else 10
        img[i, :, 6:10, x0:x0 + 4] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    return img


def test_union_mask_covers_the_region_in_either_image_and_source_only_the_first(red_spec):
    x, moved = square(2, torch.tensor([True, True])), square(2, torch.tensor([True, False]))
    union = SemanticRegion(["red"], segmenter=red_spec).edit_masks(x, moved)
    source = SemanticRegion(["red"], segmenter=red_spec, mask_mode="source").edit_masks(x, moved)
    left = torch.zeros(RES, RES, dtype=torch.bool)
    left[6:10, 2:6] = True
    right = torch.zeros(RES, RES, dtype=torch.bool)
    right[6:10, 10:14] = True
    assert torch.equal(source[0], left) and torch.equal(source[1], left)
    assert torch.equal(union[0], left), "the square did not move: the union is the square"
    assert torch.equal(union[1], left | right), "the square moved: both places belong to the edit"


class MovingSquareG(UnconditionalGenerator):
    """A generator whose red square sits left or right by the sign of axis 0 (the link's axis),
    on a background whose grey level follows axis 8 (a complement axis)."""

    resolution = RES

    def synthesis(self, ws, **kw):
        img = square(ws.shape[0], ws[:, 0, 0] >= 0)
        background = (img[:, 1:2] == -0.5).float()  # the square's green channel is -1
        return img + 0.3 * torch.tanh(ws[:, 0, 8])[:, None, None, None] * background


def test_union_mode_lets_a_semantic_region_move_with_its_own_axes(red_spec):
    """Moving the square is a change of the region itself: with union masks it costs nothing
    outside the region, with source masks it does, since the square lands outside x's mask."""
    p = LatentPartition.from_specs([{"name": "red", "region": {"semantic": ["red"], "segmenter": red_spec},
                                     "axes": 8}], W, RES)
    ws = torch.full((16, 2, W), 0.05)
    terms = {}
    for mode in ("union", "source"):
        part = LatentPartition.from_specs([{**p.to_specs()[0], "region": {**p.to_specs()[0]["region"],
                                                                          "mask_mode": mode}}], W, RES)
        terms[mode] = link_loss(MovingSquareG(), ws, part, {}, alpha=3.0, form="absolute",
                                generator=torch.Generator().manual_seed(0))
    assert terms["union"]["out/red"].item() == 0.0
    assert terms["source"]["out/red"].item() > 0.01
    # The complement axis only recolours the background: nothing changes inside the square.
    assert terms["union"]["in/red"].item() == 0.0 and terms["source"]["in/red"].item() == 0.0


def test_shared_mode_compares_a_complement_edit_only_where_both_images_are_region(red_spec):
    x, moved = square(2, torch.tensor([True, True])), square(2, torch.tensor([True, False]))
    region = SemanticRegion(["red"], segmenter=red_spec, mask_mode="shared")
    left = torch.zeros(RES, RES, dtype=torch.bool)
    left[6:10, 2:6] = True
    right = torch.zeros(RES, RES, dtype=torch.bool)
    right[6:10, 10:14] = True
    assert torch.equal(region.edit_masks(x, moved)[1], left | right), "the link's own edit: the union"
    inter = region.complement_masks(x, moved)
    assert torch.equal(inter[0], left) and not inter[1].any(), "the complement's edit: the intersection"
    union = SemanticRegion(["red"], segmenter=red_spec)
    assert torch.equal(union.complement_masks(x, moved)[1], left | right)


class PushedSquareG(MovingSquareG):
    """The square moves with a complement axis (8), as a building pushes the skyline; the
    link's axis 0 only recolours the background."""

    def synthesis(self, ws, **kw):
        img = square(ws.shape[0], ws[:, 0, 8] >= 0)
        background = (img[:, 1:2] == -0.5).float()
        return img + 0.3 * torch.tanh(ws[:, 0, 0])[:, None, None, None] * background


def test_shared_mode_lets_other_axes_move_the_border(red_spec):
    """Under union masks, the complement moving the square counts as change inside the
    region; under shared masks it does not (no pixel is red in both images and changed)."""
    terms = {}
    for mode in ("union", "shared"):
        part = LatentPartition.from_specs([{"name": "red", "axes": 8, "region": {
            "semantic": ["red"], "segmenter": red_spec, "mask_mode": mode}}], W, RES)
        terms[mode] = link_loss(PushedSquareG(), torch.full((16, 2, W), 0.05), part, {}, alpha=3.0,
                                form="absolute", generator=torch.Generator().manual_seed(0))
    assert terms["union"]["in/red"].item() > 0.01
    assert terms["shared"]["in/red"].item() == 0.0


class HaloSquareG(MovingSquareG):
    """The square moves with the link's axis 0 and draws a one-pixel halo (not red) around it, as a
    generator's blurred edge does; complement axis 8 recolours the square's own outer ring of pixels."""

    def synthesis(self, ws, **kw):
        img = square(ws.shape[0], ws[:, 0, 0] >= 0)
        red = (img[:, :1] > 0).float()
        halo = torch.nn.functional.max_pool2d(red, 3, stride=1, padding=1) - red
        ring = red - (1 - torch.nn.functional.max_pool2d(1 - red, 3, stride=1, padding=1))
        img = img + 0.4 * halo
        return img + 0.5 * torch.tanh(ws[:, 0, 8])[:, None, None, None] * ring * torch.tensor([0, 1.0, 0])[:, None, None]


def test_a_margin_leaves_the_band_along_the_border_out_of_both_terms(red_spec):
    terms = {}
    for margin in (0.0, 1 / RES):
        part = LatentPartition.from_specs([{"name": "red", "axes": 8, "region": {
            "semantic": ["red"], "segmenter": red_spec, "margin": margin}}], W, RES)
        assert part["red"].region.margin_pixels(RES) == round(margin * RES)
        terms[margin] = link_loss(HaloSquareG(), torch.full((16, 2, W), 0.05), part, {}, alpha=3.0,
                                  form="absolute", generator=torch.Generator().manual_seed(0))
    assert terms[0.0]["out/red"].item() > 0.001, "the halo moves with the square, outside the region"
    assert terms[0.0]["in/red"].item() > 0.001, "the complement recolours the square's edge"
    assert terms[1 / RES]["out/red"].item() == 0.0 and terms[1 / RES]["in/red"].item() == 0.0
    spec = SemanticRegion(["red"], segmenter=red_spec, margin=0.03).to_spec()
    assert spec["margin"] == 0.03 and "margin" not in SemanticRegion(["red"], segmenter=red_spec).to_spec()
    with pytest.raises(RegionError, match="margin is a fraction of the image width"):
        SemanticRegion(["red"], segmenter=red_spec, margin=2)


def test_unknown_class_or_missing_segmenter_fails_before_training(red_spec, tmp_path):
    with pytest.raises(ValueError, match=r"'sky'.*other, red"):
        SemanticRegion(["sky"], segmenter=red_spec).model()
    with pytest.raises(RegionError, match="names no segmenter"):
        SemanticRegion(["red"]).model()
    with pytest.raises(ValueError, match="missing.safetensors"):
        SemanticRegion(["red"], segmenter=str(tmp_path / "missing.safetensors")).model()


def test_a_tiny_semantic_fine_tune_runs_end_to_end_with_the_builtin_segmenter(tmp_path, capsys):
    """segmenter train -> LinkGAN fine-tune with a semantic and a fixed link -> metrics -> edit grid."""
    data = tmp_path / "faces.zip"
    assert main(["dataset", "toyfaces", "--out", str(data), "--n", "64", "--res", str(RES), "--no-progress"]) == 0
    seg = tmp_path / "seg.safetensors"
    assert main(["segmenter", "train", "--data", str(data), "--out", str(seg), "--steps", "30", "--batch", "8"]) == 0
    base = tiny_run(data, tmp_path / "base", res=RES, kimg=0.016)
    from linkgan.training import train

    train(base, progress=False)
    out = tmp_path / "mouth"
    code = main(["train", "--init", str(tmp_path / "base"), "--data", str(data), "--out", str(out),
                 "--kimg", "0.032", "--batch", "8", "--workers", "0", "--link-interval", "1", "--no-progress",
                 "--link", "mouth=semantic:mouth@8", "--link", "eyes=box:0.2,0.3,0.8,0.5@8",
                 "--segmenter", str(seg)])
    assert code == 0, capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())["links"]
    assert saved[0]["region"] == {"semantic": ["mouth"], "segmenter": str(seg)}, "the segmenter is saved by path"
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert any("Loss/link/out/mouth" in s for s in stats), "the semantic link was regularized"
    m = tmp_path / "m.json"
    assert main(["metrics", "--ckpt", str(out), "--metrics", "mse1k", "--out", str(m), "--no-progress"]) == 0
    result = json.loads(m.read_text())["mse1k"]
    assert set(result) == {"mouth", "eyes"}
    # A 30-step segmenter may find no mouth in a barely trained G; the numbers must still be sane.
    assert all(v >= 0 and v == v for v in result["mouth"].values())
    grid = tmp_path / "edit.png"
    assert main(["edit", "--ckpt", str(out), "--link", "mouth", "--seeds", "0-1", "--n", "2", "--out", str(grid)]) == 0
    assert grid.is_file()


@pytest.mark.parametrize("mode", ["source", "union", "shared"])
def test_mask_modes_combine_the_original_and_edited_regions_the_same_for_loss_and_metric(mode):
    """SemanticRegion.combine_masks is the one place of the modes: the regularizer calls it on float
    masks and the metric (edit_masks / complement_masks) on bool ones."""
    region = SemanticRegion(["sky"], mask_mode=mode)
    m = torch.tensor([[True, True, False, False]])
    m_edit = torch.tensor([[True, False, True, False]])
    union, both = m | m_edit, m & m_edit
    own = region.combine_masks(m, m_edit)
    other = region.combine_masks(m, m_edit, complement=True)
    expected = {"source": (m, m), "union": (union, union), "shared": (union, both)}[mode]
    assert torch.equal(own, expected[0]) and torch.equal(other, expected[1])
    as_float = region.combine_masks(m.float(), m_edit.float(), complement=True)
    assert torch.equal(as_float, expected[1].float())
