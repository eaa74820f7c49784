"""Region geometry: rasterization at any resolution, specs, shorthand, and error messages."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from linkgan.regions import (
    BoxRegion,
    EllipseRegion,
    MaskRegion,
    PolygonRegion,
    RegionError,
    SemanticRegion,
    draw_outline,
    masks_overlap,
    overlap_fraction,
    parse_region_shorthand,
    region_from_spec,
)


def rows_cols(mask):
    """Indices of the rows and columns that hold at least one inside pixel."""
    return torch.nonzero(mask.any(1)).flatten().tolist(), torch.nonzero(mask.any(0)).flatten().tolist()


@pytest.mark.parametrize("res", [8, 16, 64, 256])
def test_box_on_pixel_boundaries_covers_exactly_its_area(res):
    box = BoxRegion(0.25, 0.5, 0.75, 0.875)
    mask = box.mask(res)
    assert mask.shape == (res, res) and mask.dtype == torch.bool
    assert int(mask.sum()) == round(0.5 * 0.375 * res * res)


@pytest.mark.parametrize("res", [7, 16, 33, 100])
def test_box_off_pixel_boundaries_is_a_rectangle_within_one_pixel_of_its_extent(res):
    x0, y0, x1, y1 = 0.13, 0.21, 0.58, 0.9
    mask = BoxRegion(x0, y0, x1, y1).mask(res)
    rows, cols = rows_cols(mask)
    assert abs(len(cols) - (x1 - x0) * res) <= 1 and abs(len(rows) - (y1 - y0) * res) <= 1
    assert int(mask.sum()) == len(rows) * len(cols)  # a filled rectangle


def test_box_rows_count_from_the_top_of_the_image():
    mask = BoxRegion(0.0, 0.0, 1.0, 0.25).mask(8)
    assert rows_cols(mask)[0] == [0, 1]


def test_boxes_sharing_an_edge_share_no_pixel():
    left, right = BoxRegion(0, 0, 0.5, 1), BoxRegion(0.5, 0, 1, 1)
    for res in (1, 3, 8):
        assert not masks_overlap(left, right, res)
        assert bool((left.mask(res) | right.mask(res)).all())


@pytest.mark.parametrize("res", [64, 128])
def test_ellipse_area_is_pi_rx_ry(res):
    rx, ry = 0.3, 0.15
    area = int(EllipseRegion(0.5, 0.4, rx, ry).mask(res).sum())
    assert area == pytest.approx(math.pi * rx * ry * res * res, rel=0.03)


def test_triangle_in_the_top_left_is_drawn_in_the_top_left_rows_and_columns():
    mask = PolygonRegion([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5]]).mask(16)
    rows, cols = rows_cols(mask)
    assert max(rows) < 8 and max(cols) < 8
    assert bool(mask[0, :7].all())  # the long edge along the top row
    assert not bool(mask[7, 7])  # the corner opposite the right angle is outside


def test_polygon_winding_order_does_not_change_the_mask():
    pts = [[0.1, 0.2], [0.8, 0.1], [0.9, 0.7], [0.3, 0.9]]
    assert torch.equal(PolygonRegion(pts).mask(32), PolygonRegion(pts[::-1]).mask(32))


def test_concave_l_shaped_polygon_excludes_its_notch():
    # An L: the full left column [0, 0.5] x [0, 1] plus the bottom bar [0.5, 1] x [0.5, 1].
    ell = PolygonRegion([[0, 0], [0.5, 0], [0.5, 0.5], [1, 0.5], [1, 1], [0, 1]])
    mask = ell.mask(16)
    assert not bool(mask[:8, 8:].any())  # the notch, top right
    assert bool(mask[:, :8].all()) and bool(mask[8:, 8:].all())
    assert torch.equal(mask, BoxRegion(0, 0, 0.5, 1).mask(16) | BoxRegion(0.5, 0.5, 1, 1).mask(16))


def test_polygon_equal_to_a_box_rasterizes_like_the_box():
    poly = PolygonRegion([[0.25, 0.25], [0.75, 0.25], [0.75, 0.5], [0.25, 0.5]])
    assert torch.equal(poly.mask(32), BoxRegion(0.25, 0.25, 0.75, 0.5).mask(32))


def save_png(path, array, mode="L"):
    Image.fromarray(array, mode=mode if mode != "L" else None).save(path)
    return path


def test_mask_png_drawn_at_64px_reads_back_at_16_and_64(tmp_path):
    box = BoxRegion(0.25, 0.125, 0.75, 0.5)
    drawn = box.mask(64).numpy().astype(np.uint8) * 255
    region = MaskRegion(save_png(tmp_path / "m.png", drawn))
    assert torch.equal(region.mask(64), box.mask(64))
    assert torch.equal(region.mask(16), box.mask(16))
    assert torch.equal(region.mask(128), box.mask(128))  # upsampling keeps it binary and in place
    assert region.bounds() == (0.25, 0.125, 0.75, 0.5)


def test_mask_png_at_a_ratio_that_is_not_whole_keeps_more_than_half_covered_pixels(tmp_path):
    drawn = np.zeros((48, 48), np.uint8)
    drawn[:, :24] = 255  # left half
    region = MaskRegion(save_png(tmp_path / "half.png", drawn))
    assert torch.equal(region.mask(32), BoxRegion(0, 0, 0.5, 1).mask(32))
    assert int(region.mask(5).sum()) == 2 * 5  # the middle column is exactly half covered: outside


def test_mask_png_rgba_counts_transparent_pixels_as_outside(tmp_path):
    rgba = np.full((8, 8, 4), 255, np.uint8)
    rgba[:, 4:, 3] = 0  # right half white but transparent
    region = MaskRegion(save_png(tmp_path / "a.png", rgba, mode="RGBA"))
    assert torch.equal(region.mask(8), BoxRegion(0, 0, 0.5, 1).mask(8))


def test_mask_relative_path_resolves_against_base_dir(tmp_path):
    save_png(tmp_path / "eyes.png", np.full((4, 4), 255, np.uint8))
    region = region_from_spec({"mask": "eyes.png"}, base_dir=tmp_path)
    assert bool(region.mask(4).all())
    assert region_from_spec(region.to_spec()) == region


def test_missing_mask_file_error_names_the_path(tmp_path):
    region = MaskRegion(tmp_path / "nope.png")
    with pytest.raises(RegionError, match="nope.png.*does not exist"):
        region.mask(16)
    with pytest.raises(RegionError, match="link 'eyes'.*nope.png"):
        region.validate(16, "eyes")


def test_corrupt_mask_file_error_names_the_path(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(RegionError, match="bad.png.*could not be read"):
        MaskRegion(tmp_path / "bad.png").mask(8)


def test_draw_outline_of_a_box_is_its_border():
    mask = BoxRegion(0.25, 0.25, 0.75, 0.75).mask(16)  # rows/cols 4..11
    outline = draw_outline(mask)
    expected = mask.clone()
    expected[5:11, 5:11] = False
    assert torch.equal(outline, expected)
    # A region touching the image edge is closed along the edge too.
    assert bool(draw_outline(torch.ones(6, 6, dtype=torch.bool))[0].all())
    # Batched masks are outlined one by one.
    assert torch.equal(draw_outline(mask[None].repeat(2, 1, 1))[1], outline)


def test_mask_returns_a_copy_that_callers_may_edit():
    box = BoxRegion(0, 0, 0.5, 0.5)
    box.mask(8)[:] = False
    assert int(box.mask(8).sum()) == 16


@pytest.mark.parametrize("region", [
    BoxRegion(0.1, 0.2, 0.3, 0.4),
    EllipseRegion(0.5, 0.5, 0.2, 0.1),
    PolygonRegion([[0.1, 0.1], [0.9, 0.1], [0.5, 0.8]]),
    MaskRegion("masks/eyes.png"),
    SemanticRegion(["sky", "building"], segmenter="ade20k"),
    SemanticRegion("sky"),
])
def test_spec_round_trips_for_every_kind(region):
    again = region_from_spec(region.to_spec())
    assert again == region and type(again) is type(region)


@pytest.mark.parametrize("text, expected", [
    ("box:0.1,0.2,0.3,0.4", BoxRegion(0.1, 0.2, 0.3, 0.4)),
    ("ellipse: 0.5, 0.5, 0.2, 0.1", EllipseRegion(0.5, 0.5, 0.2, 0.1)),
    ("polygon:0.1,0.1;0.9,0.1;0.5,0.8", PolygonRegion([[0.1, 0.1], [0.9, 0.1], [0.5, 0.8]])),
    ("mask:masks/eyes.png", MaskRegion("masks/eyes.png")),
    ("semantic:sky+building", SemanticRegion(["sky", "building"])),
    ("semantic:sky", SemanticRegion(["sky"])),
])
def test_shorthand_parses_every_kind(text, expected):
    assert parse_region_shorthand(text) == expected


def test_spec_accepts_yaml_style_exponent_strings():
    # PyYAML reads 5e-1 (no dot) as a string.
    assert region_from_spec({"box": ["0", "0", "5e-1", 1]}) == BoxRegion(0, 0, 0.5, 1)


@pytest.mark.parametrize("spec, message", [
    ({"circle": [0.5, 0.5, 0.1]}, r"unknown region kind 'circle'.*box, ellipse, polygon, mask, semantic"),
    ({"box": [0.1, 0.2, 0.3]}, r"box region needs 4 numbers \[x0, y0, x1, y1\], got 3"),
    ({"ellipse": [0.5, 0.5, 0.1, 0.1, 0.2]}, r"ellipse region needs 4 numbers"),
    ({"polygon": [[0, 0], [1, 0]]}, r"at least 3 \[x, y\] points, got 2"),
    ({"polygon": [[0, 0], [1, 0, 2], [0, 1]]}, r"polygon region needs 2 numbers \[x, y\]"),
    ({"box": [0.1, "left", 0.3, 0.4]}, r"expected a number, got 'left'"),
    ({"box": [0.1, True, 0.3, 0.4]}, r"expected a number, got True"),
    ({"box": [0.5, 0.2, 0.3, 0.4]}, r"x0 < x1 and y0 < y1"),
    ({"ellipse": [0.5, 0.5, 0.0, 0.1]}, r"radius <= 0"),
    ({"semantic": []}, r"non-empty list of class names"),
    ({"box": [0, 0, 1, 1], "ellipse": [0.5, 0.5, 0.1, 0.1]}, r"several region kinds"),
    ({"box": [0, 0, 1, 1], "segmenter": "x"}, r"'segmenter' only applies to semantic"),
    ("[0, 0, 1, 1]", r"not KIND:VALUES"),
])
def test_malformed_specs_raise_errors_that_say_what_is_expected(spec, message):
    with pytest.raises(RegionError, match=message):
        region_from_spec(spec)


def test_unknown_shorthand_kind_lists_the_valid_kinds():
    with pytest.raises(RegionError, match=r"unknown region kind 'circle'.*valid kinds: box, ellipse"):
        parse_region_shorthand("circle:0.5,0.5,0.1")


@pytest.mark.parametrize("region, bad", [
    (BoxRegion(0.5, 0.5, 1.2, 0.9), "x1=1.2"),
    (BoxRegion(-0.1, 0.0, 0.5, 0.5), "x0=-0.1"),
    (EllipseRegion(0.9, 0.5, 0.2, 0.1), r"cx\+rx=1.1"),
    (PolygonRegion([[0.1, 0.1], [0.9, 0.1], [0.5, 1.5]]), "point 2 y=1.5"),
])
def test_region_outside_the_image_is_rejected_naming_link_and_coordinate(region, bad):
    with pytest.raises(RegionError, match=rf"link 'eyes'.*outside the image.*{bad}.*within \[0, 1\]"):
        region.validate(32, "eyes")


def test_coordinates_within_rounding_tolerance_of_the_edge_are_accepted():
    BoxRegion(0.0, 0.0, 1 + 1e-9, 1.0).validate(16, "full")


def test_region_between_pixel_centres_is_empty_at_low_resolution_only():
    thin = BoxRegion(0.3, 0.3, 0.32, 0.5)  # 2% wide: no pixel centre at 16px
    with pytest.raises(RegionError, match=r"link 'eyes'.*no pixel at resolution 16x16.*enlarge the region or "
                                          r"raise the resolution"):
        thin.validate(16, "eyes")
    thin.validate(256, "eyes")


def test_semantic_region_has_no_fixed_mask():
    sky = SemanticRegion(["sky"])
    assert not sky.is_fixed and sky.bounds() is None
    sky.validate(16, "sky")  # nothing geometric to check
    with pytest.raises(RegionError, match="per-image masks; use masks_for"):
        sky.mask(16)
    with pytest.raises(RegionError, match=r"names no segmenter.*--segmenter"):
        sky.masks_for(torch.zeros(1, 3, 16, 16))


def test_semantic_region_resolves_its_segmenter_path_and_keeps_callable_specs(tmp_path):
    rel = SemanticRegion(["sky"], segmenter="seg.safetensors", base_dir=tmp_path)
    assert rel.segmenter == str(tmp_path / "seg.safetensors")
    assert SemanticRegion(["sky"], segmenter="mypkg.parsers:face").segmenter == "mypkg.parsers:face"
    spec = {"semantic": ["sky"], "segmenter": "mypkg.parsers:face", "mask_mode": "source"}
    assert region_from_spec(spec).to_spec() == spec
    assert SemanticRegion("sky").with_segmenter("a:b").segmenter == "a:b"
    assert rel.with_segmenter("a:b") is rel, "a region's own segmenter wins over the default"
    with pytest.raises(RegionError, match="mask_mode must be one of union, shared, source"):
        SemanticRegion("sky", mask_mode="intersection")
    with pytest.raises(RegionError, match="'mask_mode' only applies to semantic"):
        region_from_spec({"box": [0, 0, 1, 1], "mask_mode": "union"})


def test_overlap_of_fixed_regions():
    a, b = BoxRegion(0, 0, 0.5, 0.5), BoxRegion(0.25, 0.25, 1, 1)
    assert masks_overlap(a, b, 16)
    assert overlap_fraction(a, b, 16) == pytest.approx(0.25)
    assert not masks_overlap(a, BoxRegion(0.5, 0.5, 1, 1), 16)
