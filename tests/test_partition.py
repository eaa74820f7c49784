"""Latent partition: assigning W channels to links, validating links, and touching one group only."""

import numpy as np
import pytest
import torch
from PIL import Image

from linkgan.partition import LatentPartition, Link, LinkError, load_links_file, parse_link_shorthand
from linkgan.regions import BoxRegion, RegionError, SemanticRegion

EYES = {"box": [0.22, 0.36, 0.78, 0.52]}
MOUTH = {"box": [0.32, 0.66, 0.68, 0.82]}

LINKS_YAML = """\
links:
  - {name: eyes,  region: {box: [0.22, 0.36, 0.78, 0.52]}, axes: 64}
  - {name: mouth, region: {box: [0.32, 0.66, 0.68, 0.82]}, axes: 64}
"""


def two_links(w_dim=512, **kw):
    return LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": 64},
                                       {"name": "mouth", "region": MOUTH, "axes": 64}], w_dim, **kw)


# -- channel assignment ------------------------------------------------------------------------

def test_counts_take_the_next_free_block_in_declaration_order_from_channel_0():
    p = two_links()
    assert p["eyes"].axes == (0, 64) and p["mouth"].axes == (64, 128)
    assert p.names == ["eyes", "mouth"] and len(p) == 2 and p["eyes"].size == 64


def test_explicit_ranges_are_kept_and_counts_fill_the_lowest_gap_around_them():
    p = LatentPartition.from_specs([
        {"name": "mouth", "region": MOUTH, "axes": 32},
        {"name": "eyes", "region": EYES, "axes": "0:16"},
        {"name": "top", "region": {"box": [0, 0, 1, 0.2]}, "axes": [100, 164]},
    ], 512)
    assert p["eyes"].axes == (0, 16) and p["top"].axes == (100, 164)
    assert p["mouth"].axes == (16, 48)


def test_axes_masks_select_exactly_the_group_and_its_complement():
    p = two_links(w_dim=128)
    m = p.axes_mask("mouth")
    assert m.shape == (128,) and m.dtype == torch.bool
    assert torch.nonzero(m).flatten().tolist() == list(range(64, 128))
    assert torch.equal(p.complement_mask("mouth"), ~m)


def test_region_mask_is_the_links_region():
    p = two_links(resolution=32)
    assert torch.equal(p.region_mask("eyes", 32), BoxRegion(*EYES["box"]).mask(32))


def test_saved_specs_use_explicit_ranges_and_rebuild_the_same_partition():
    p = two_links()
    specs = p.to_specs()
    assert [s["axes"] for s in specs] == [[0, 64], [64, 128]]
    assert LatentPartition.from_specs(specs, 512) == p
    assert LatentPartition.from_specs(specs, 256) != p  # w_dim is part of the partition


def test_a_links_weight_is_saved_and_checked():
    p = LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": 64, "weight": 1.5},
                                    {"name": "mouth", "region": MOUTH, "axes": 64}], 512)
    assert p["eyes"].weight == 1.5 and p["mouth"].weight == 1.0
    specs = p.to_specs()
    assert specs[0]["weight"] == 1.5 and "weight" not in specs[1]
    assert LatentPartition.from_specs(specs, 512) == p
    for bad in (0, -1.0, float("nan"), "2", True):
        with pytest.raises(LinkError, match=r"link 'eyes': weight .* must be a number > 0"):
            LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": 64, "weight": bad}], 512)


def test_empty_partition_is_a_vanilla_model():
    p = LatentPartition.from_specs([], 512)
    assert len(p) == 0 and list(p) == [] and p.to_specs() == []


def test_links_yaml_file_loads(tmp_path):
    path = tmp_path / "links.yaml"
    path.write_text(LINKS_YAML)
    p = load_links_file(path, w_dim=512, resolution=64)
    assert p == two_links()
    assert isinstance(p["eyes"].region, BoxRegion)


def test_links_file_mask_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "masks").mkdir()
    drawn = np.zeros((32, 32), np.uint8)
    drawn[4:12, 4:28] = 255
    Image.fromarray(drawn).save(tmp_path / "masks" / "eyes.png")
    path = tmp_path / "links.yaml"
    path.write_text("links:\n  - {name: eyes, region: {mask: masks/eyes.png}, axes: 8}\nallow_overlap: false\n")
    p = load_links_file(path, w_dim=32, resolution=16)
    assert int(p.region_mask("eyes", 16).sum()) == 4 * 12


def test_link_shorthand_parses_name_region_and_axes():
    assert parse_link_shorthand("eyes=box:0.22,0.36,0.78,0.52@64") == {"name": "eyes", "region": EYES, "axes": 64}
    spec = parse_link_shorthand("sky=semantic:sky+cloud@64:128")
    assert spec == {"name": "sky", "region": {"semantic": ["sky", "cloud"]}, "axes": [64, 128]}
    assert LatentPartition.from_specs([spec], 512)["sky"].axes == (64, 128)


def test_link_shorthand_without_axes_says_how_to_add_them():
    with pytest.raises(LinkError, match=r"no axes; end it with @n"):
        parse_link_shorthand("eyes=box:0.22,0.36,0.78,0.52")


# -- validation ---------------------------------------------------------------------------------

def test_overlapping_groups_name_both_links_and_their_ranges():
    with pytest.raises(LinkError, match=r"'eyes' \[0, 64\) and 'mouth' \[32, 96\) share W channels"):
        LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": [0, 64]},
                                    {"name": "mouth", "region": MOUTH, "axes": "32:96"}], 512)


def test_too_many_channels_say_requested_and_available_and_suggest_fewer_axes():
    with pytest.raises(LinkError, match=r"ask for 576 channels.*eyes 512, mouth 64.*w_dim is 512.*fewer axes or "
                                        r"use a bigger --w-dim"):
        LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": 512},
                                    {"name": "mouth", "region": MOUTH, "axes": 64}], 512)
    with pytest.raises(LinkError, match=r"link 'eyes': axes \[480, 544\).*w_dim is 512"):
        LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": "480:544"}], 512)


def test_counts_that_fit_in_total_but_not_contiguously_suggest_an_explicit_range():
    with pytest.raises(LinkError, match=r"link 'mouth' asks for 64 contiguous.*free: \[0, 32\), \[96, 128\)"):
        LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": "32:96"},
                                    {"name": "mouth", "region": MOUTH, "axes": 64}], 128)


@pytest.mark.parametrize("axes, message", [
    (0, r"link 'eyes' asks for 0 axes"),
    (-4, r"link 'eyes' asks for -4 axes"),
    ("64:64", r"link 'eyes': axes \[64, 64\) is an empty group"),
    ([10, 2], r"link 'eyes': axes \[10, 2\) is an empty group"),
    ([-8, 8], r"start below channel 0"),
    ("sixty-four", r"link 'eyes': axes 'sixty-four' is not an integer n"),
    (6.5, r"is not an integer n"),
])
def test_empty_or_malformed_groups_are_rejected(axes, message):
    with pytest.raises(LinkError, match=message):
        LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": axes}], 512)


def test_one_link_cannot_take_all_of_w():
    with pytest.raises(LinkError, match=r"'eyes' takes all 64 channels.*no complement"):
        LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": 64}], 64)


def test_region_outside_the_image_names_the_link():
    with pytest.raises(RegionError, match=r"link 'eyes'.*outside the image.*x1=1.3"):
        LatentPartition.from_specs([{"name": "eyes", "region": {"box": [0.5, 0.3, 1.3, 0.5]}, "axes": 8}], 512)


def test_region_empty_at_the_training_resolution_names_link_and_resolution():
    tiny = {"name": "eyes", "region": {"box": [0.30, 0.30, 0.32, 0.32]}, "axes": 8}
    with pytest.raises(RegionError, match=r"link 'eyes'.*no pixel at resolution 16x16.*enlarge the region or "
                                          r"raise the resolution"):
        LatentPartition.from_specs([tiny], 512, resolution=16)
    LatentPartition.from_specs([tiny], 512)  # the resolution is not known yet: nothing to check


def test_malformed_region_error_names_the_link():
    with pytest.raises(RegionError, match=r"link 'eyes': box region needs 4 numbers"):
        LatentPartition.from_specs([{"name": "eyes", "region": {"box": [0.1, 0.2]}, "axes": 8}], 512)


def test_overlapping_fixed_regions_are_rejected_unless_allowed():
    specs = [{"name": "face", "region": {"ellipse": [0.5, 0.5, 0.4, 0.45]}, "axes": 64},
             {"name": "eyes", "region": EYES, "axes": 64}]
    with pytest.raises(LinkError, match=r"links 'face'.*and 'eyes'.*overlap.*set allow_overlap: true in the links "
                                        r"file if this is intended"):
        LatentPartition.from_specs(specs, 512, resolution=32)
    p = LatentPartition.from_specs(specs, 512, resolution=32, allow_overlap=True)
    assert p.names == ["face", "eyes"]


def test_allow_overlap_from_the_links_file(tmp_path):
    path = tmp_path / "links.yaml"
    path.write_text(LINKS_YAML + "  - {name: face, region: {box: [0.1, 0.1, 0.9, 0.9]}, axes: 64}\n")
    with pytest.raises(LinkError, match=r"links.yaml: the regions of links 'eyes'.*'face'"):
        load_links_file(path, 512)
    path.write_text(path.read_text() + "allow_overlap: true\n")
    assert len(load_links_file(path, 512)) == 3


@pytest.mark.parametrize("names, message", [
    (["eyes", "eyes"], r"two links are named 'eyes'; give each link a unique name"),
    (["", "mouth"], r"link name '' must be a non-empty string"),
    (["left eye", "mouth"], r"link name 'left eye' may only use letters.*'left_eye'"),
])
def test_link_names_must_be_unique_and_simple(names, message):
    specs = [{"name": names[0], "region": EYES, "axes": 8}, {"name": names[1], "region": MOUTH, "axes": 8}]
    with pytest.raises(LinkError, match=message):
        LatentPartition.from_specs(specs, 512)


def test_unknown_link_lookup_lists_the_known_links():
    p = two_links()
    with pytest.raises(LinkError, match=r"unknown link 'nose'; known links: 'eyes', 'mouth'"):
        p["nose"]
    with pytest.raises(LinkError, match=r"unknown link 'nose'"):
        p.axes_mask("nose")


def test_semantic_regions_skip_geometric_checks():
    # A semantic region has no pixels of its own: no emptiness or overlap check applies.
    p = LatentPartition.from_specs([{"name": "sky", "region": {"semantic": "sky"}, "axes": 64},
                                    {"name": "all", "region": {"box": [0, 0, 1, 1]}, "axes": 64}],
                                   512, resolution=8)
    assert isinstance(p["sky"].region, SemanticRegion) and p["sky"].axes == (0, 64)


def test_constructor_validates_links_built_by_hand():
    eyes = Link("eyes", BoxRegion(*EYES["box"]), (0, 64))
    assert LatentPartition([eyes], 512)["eyes"] is eyes
    with pytest.raises(LinkError, match=r"'eyes' \[0, 64\) and 'mouth' \[63, 70\)"):
        LatentPartition([eyes, Link("mouth", BoxRegion(*MOUTH["box"]), (63, 70))], 512)


# -- perturbation -------------------------------------------------------------------------------

@pytest.fixture
def part():
    return LatentPartition.from_specs([{"name": "eyes", "region": EYES, "axes": "8:24"},
                                       {"name": "mouth", "region": MOUTH, "axes": 8}], 32)


def ws_pair(shape=(3, 4, 32)):
    g = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def test_replace_axes_takes_the_group_from_source_and_keeps_every_other_channel(part):
    ws, src = ws_pair()
    before = ws.clone()
    out = part.replace_axes(ws, src, "eyes")
    assert torch.equal(out[..., 8:24], src[..., 8:24])
    assert torch.equal(out[..., :8], ws[..., :8]) and torch.equal(out[..., 24:], ws[..., 24:])
    assert torch.equal(ws, before)  # inputs untouched


def test_replace_axes_broadcasts_a_single_w_over_layers_and_batch(part):
    ws, _ = ws_pair()
    w_src = torch.randn(1, 32)
    out = part.replace_axes(ws, w_src, "mouth")
    assert out.shape == ws.shape
    assert torch.equal(out[..., :8], w_src[:, None, :8].expand(3, 4, 8))
    assert torch.equal(out[..., 8:], ws[..., 8:])


def test_perturb_axes_adds_delta_on_the_group_only(part):
    ws, delta = ws_pair()
    out = part.perturb_axes(ws, "eyes", delta)
    assert torch.equal(out[..., 8:24], ws[..., 8:24] + delta[..., 8:24])
    assert torch.equal(out[..., :8], ws[..., :8]) and torch.equal(out[..., 24:], ws[..., 24:])


def test_perturb_complement_leaves_the_group_bit_identical(part):
    ws, _ = ws_pair()
    w_delta = torch.randn(3, 32)  # one delta per sample, shared by all layers
    out = part.perturb_complement(ws, "eyes", w_delta)
    assert torch.equal(out[..., 8:24], ws[..., 8:24])
    assert torch.equal(out[..., 24:], ws[..., 24:] + w_delta[:, None, 24:])


def test_perturbation_works_on_w_of_shape_n_by_w_dim_and_passes_gradients(part):
    w = torch.randn(5, 32, requires_grad=True)
    delta = torch.randn(5, 32)
    out = part.perturb_axes(w, "mouth", delta)
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones(5, 32))
    assert torch.equal(out[:, 8:], w[:, 8:].detach())


def test_interpolate_axes_moves_only_the_group_from_ws_to_target(part):
    ws, target = ws_pair()
    assert torch.equal(part.interpolate_axes(ws, target, "eyes", 0.0), ws)
    end = part.interpolate_axes(ws, target, "eyes", 1.0)
    assert torch.equal(end[..., 8:24], target[..., 8:24]) and torch.equal(end[..., 24:], ws[..., 24:])
    t = torch.tensor([0.0, 0.5, 1.0])
    mid = part.interpolate_axes(ws, target, "eyes", t)
    assert torch.allclose(mid[1, :, 8:24], (ws[1, :, 8:24] + target[1, :, 8:24]) / 2)
    assert torch.equal(mid[0], ws[0]) and torch.equal(mid[2, :, 8:24], target[2, :, 8:24])
    assert torch.equal(mid[..., :8], ws[..., :8])


def test_shape_mismatch_errors_name_both_shapes(part):
    ws, _ = ws_pair()
    with pytest.raises(LinkError, match=r"delta of shape \(2, 32\) does not broadcast to ws of shape \(3, 4, 32\)"):
        part.perturb_axes(ws, "eyes", torch.zeros(2, 32))
    with pytest.raises(LinkError, match=r"got \(3, 4, 16\); the partition was built for w_dim=32"):
        part.perturb_axes(torch.zeros(3, 4, 16), "eyes", torch.zeros(3, 16))


# -- shared axes (--link-shared-axes) ---------------------------------------------------------

CORNERS = [{"name": n, "region": {"box": box}, "axes": 96} for n, box in
           (("tl", [0, 0, 0.5, 0.5]), ("tr", [0.5, 0, 1, 0.5]), ("bl", [0, 0.5, 0.5, 1]), ("br", [0.5, 0.5, 1, 1]))]


def test_shared_axes_are_the_last_channels_and_in_no_links_complement():
    p = LatentPartition.from_specs(CORNERS, 512, 32, shared=128)
    assert [p[n].axes for n in p.names] == [(0, 96), (96, 192), (192, 288), (288, 384)]
    assert torch.nonzero(p.shared_mask()).flatten().tolist() == list(range(384, 512))
    assert torch.nonzero(p.complement_mask("tl")).flatten().tolist() == list(range(96, 384))
    assert torch.equal(p.complement_tensor()[0], p.complement_mask("tl")) and not p.free_axes().any()
    assert p == LatentPartition.from_specs(p.to_specs(), 512, 32, shared=128)
    assert p != LatentPartition.from_specs(p.to_specs(), 512, 32) and "shared=128" in repr(p)
    # the complement's edit keeps the link's group and the shared channels
    ws, source = torch.randn(2, 3, 512), torch.randn(2, 3, 512)
    out = p.replace_complement(ws, source, "tl")
    assert torch.equal(out[..., :96], ws[..., :96]) and torch.equal(out[..., 384:], ws[..., 384:])
    assert torch.equal(out[..., 96:384], source[..., 96:384])
    delta = torch.ones(2, 512)
    moved = p.perturb_complement(ws[:, 0], "tl", delta) != ws[:, 0]
    assert torch.equal(moved[0], p.complement_mask("tl"))
    # 'shared' names the shared axes for edits: resample, transplant, interpolate
    assert torch.equal(p.axes_mask("shared"), p.shared_mask())
    moved = p.replace_axes(ws, source, "shared")
    assert torch.equal(moved[..., 384:], source[..., 384:]) and torch.equal(moved[..., :384], ws[..., :384])
    with pytest.raises(LinkError, match=r"unknown link 'eyes'; known links: 'tl', 'tr', 'bl', 'br' \(and 'shared', "
                                        r"its 128 shared axes, to edit\)"):
        p.axes_mask("eyes")
    with pytest.raises(LinkError, match=r"unknown link 'shared'; known links: 'eyes', 'mouth'$"):
        two_links().axes_mask("shared")
    with pytest.raises(LinkError, match=r"a link is named 'shared', the name that edits the 128 shared axes"):
        LatentPartition.from_specs([dict(CORNERS[0], name="shared")], 512, 32, shared=128)
    # without shared axes the complement is every other channel, as before
    assert torch.equal(two_links().complement_mask("eyes"), ~two_links().axes_mask("eyes"))


@pytest.mark.parametrize("links,shared,message", [
    (CORNERS, 256, r"ask for 384 channels.*and 256 shared axes but w_dim is 512; .*share fewer axes"),
    ([dict(CORNERS[0], axes=[400, 450])], 128, r"link 'tl' \[400, 450\) reaches into the 128 shared axes "
                                               r"\[384, 512\); give it axes below 384"),
    ([dict(CORNERS[0], axes=448)], 64, r"'tl' takes all 512 channels of W with the 64 shared axes, leaving no "
                                       r"complement.*share fewer"),
    (CORNERS, -1, r"shared axes must be a whole number from 0 to 511.*got -1"),
    (CORNERS, 512, r"shared axes must be a whole number from 0 to 511.*got 512"),
])
def test_shared_axes_that_do_not_fit_say_which_and_how_to_fix(links, shared, message):
    with pytest.raises(LinkError, match=message):
        LatentPartition.from_specs(links, 512, 32, shared=shared)
