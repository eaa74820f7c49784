"""Segmenters: the built-in U-Net learns masks, and every adapter gives the same answers through one interface."""

import json
import sys
import textwrap

import pytest
import torch

from linkgan.cli import main
from linkgan.data import TOYFACES_CLASSES, make_toyfaces
from linkgan.segment import (
    CallableSegmenter,
    Segmenter,
    SegmenterError,
    evaluate_segmenter,
    export_segmenter,
    load_segmenter,
    train_segmenter,
)

# TorchScript is deprecated in torch 2.13 but still a format users hand us.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def toyfaces16(tmp_path_factory):
    return make_toyfaces(tmp_path_factory.mktemp("seg") / "tf16.zip", n=48, res=16, seed=0, workers=1,
                         progress=False)


@pytest.fixture(scope="module")
def trained(toyfaces16, tmp_path_factory):
    """A tiny U-Net (8 base channels) trained for 250 steps at 16 px: (segmenter, its file)."""
    path = tmp_path_factory.mktemp("seg") / "seg.safetensors"
    seg = train_segmenter(toyfaces16, path, steps=250, batch=16, lr=5e-3, val_fraction=0.25, base_channels=8,
                          device="cpu", progress=False)
    return seg, path


@pytest.fixture(scope="module")
def images():
    """Smooth random images (N=5, 3, 16, 16) in [-1, 1]."""
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.interpolate(torch.randn(5, 3, 4, 4, generator=g), size=16, mode="bilinear")
    return x.tanh()


class FixedOutput:
    """A callable segmenter that returns a given tensor, whatever the images."""

    def __init__(self, output, classes=("a", "b", "c")):
        self.output, self.classes = output, list(classes)

    def __call__(self, x):
        return self.output


def test_tiny_unet_trained_briefly_beats_a_constant_prediction_by_far(trained, toyfaces16):
    seg, _ = trained
    metrics = evaluate_segmenter(seg, toyfaces16, split="val", progress=False)
    assert metrics["n_images"] == 12 and metrics["resolution"] == 16
    assert metrics["miou"] == pytest.approx(seg.metadata["val_miou"])
    # Chance level: always predicting the most common class (background) scores ~0.07 mIoU here.
    constant = CallableSegmenter(FixedOutput(torch.zeros(12, 16, 16, dtype=torch.long), TOYFACES_CLASSES))
    baseline = evaluate_segmenter(constant, toyfaces16, split="val", val_fraction=0.25, progress=False)
    assert baseline["miou"] < 0.12
    assert metrics["miou"] >= 0.25 and metrics["miou"] >= 3 * baseline["miou"]
    assert metrics["per_class_iou"]["background"] > 0.8 and metrics["pixel_accuracy"] > 0.8


def test_builtin_save_and_load_round_trip_gives_identical_outputs(trained, images):
    seg, path = trained
    loaded = load_segmenter(path, device="cpu")
    assert torch.equal(loaded.probabilities(images), seg.probabilities(images))
    assert torch.equal(loaded.segment(images), seg.segment(images))
    # In chunks (5 images as 2 + 2 + 1) only float rounding may differ.
    chunked = load_segmenter(path, device="cpu", batch_size=2)
    torch.testing.assert_close(chunked.probabilities(images), seg.probabilities(images), atol=1e-5, rtol=0)
    meta = loaded.metadata
    assert meta["classes"] == TOYFACES_CLASSES and meta["resolution"] == 16
    assert meta["architecture"]["base_channels"] == 8 and len(meta["data"]["hash"]) == 64
    assert 0 <= meta["val_miou"] <= 1 and meta["training"]["val_fraction"] == 0.25


def test_segment_and_probabilities_have_the_documented_shapes_and_carry_no_gradient(trained, images):
    seg, _ = trained
    x = images.clone().requires_grad_(True)
    ids, probs = seg.segment(x), seg.probabilities(x)
    assert ids.shape == (5, 16, 16) and ids.dtype == torch.long
    assert probs.shape == (5, 7, 16, 16) and torch.allclose(probs.sum(1), torch.ones(5, 16, 16))
    assert torch.equal(probs.argmax(1), ids)
    assert not probs.requires_grad and not seg.masks(x, "skin").requires_grad
    assert seg.segment(images[:0]).shape == (0, 16, 16)
    # Other sizes are resized to the training resolution and the answer back to the input size.
    assert seg.segment(torch.zeros(2, 3, 40, 24)).shape == (2, 40, 24)


def test_torchscript_export_loads_and_agrees_with_the_original(trained, images, tmp_path):
    seg, _ = trained
    path = export_segmenter(seg, tmp_path / "seg.pt", format="torchscript")
    loaded = load_segmenter(path, device="cpu")
    assert loaded.classes == TOYFACES_CLASSES and loaded.size == 16
    assert torch.equal(loaded.segment(images), seg.segment(images))
    torch.testing.assert_close(loaded.probabilities(images), seg.probabilities(images), atol=1e-5, rtol=0)


def test_onnx_export_runs_in_onnxruntime_and_agrees_with_the_original(trained, images, tmp_path):
    pytest.importorskip("onnxruntime")
    seg, _ = trained
    path = export_segmenter(seg, tmp_path / "seg.onnx", format="onnx")
    loaded = load_segmenter(path, device="cpu")
    assert loaded.classes == TOYFACES_CLASSES
    agree = (loaded.segment(images) == seg.segment(images)).float().mean().item()
    assert agree >= 0.999
    torch.testing.assert_close(loaded.probabilities(images), seg.probabilities(images), atol=1e-4, rtol=0)


@pytest.mark.parametrize("attr", ["instance", "module_with_classes", "factory"])
def test_python_object_given_as_module_attr_agrees_with_the_builtin(trained, images, tmp_path, monkeypatch, attr):
    seg, path = trained
    (tmp_path / "my_segmenters.py").write_text(textwrap.dedent(f"""
        from linkgan.segment import load_segmenter

        instance = load_segmenter({str(path)!r}, device="cpu")
        module_with_classes = instance.model  # an nn.Module mapping images to logits
        module_with_classes.classes = instance.classes

        def factory():
            return load_segmenter({str(path)!r}, device="cpu")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_segmenters", raising=False)
    loaded = load_segmenter(f"my_segmenters:{attr}", device="cpu")
    assert isinstance(loaded, Segmenter) and loaded.classes == TOYFACES_CLASSES
    assert torch.equal(loaded.segment(images), seg.segment(images))


class Recorder(torch.nn.Module):
    """An external model: records what it is given and returns 2-class logits at its own input size."""

    classes = ("dark", "bright")

    def __init__(self, input, size):
        super().__init__()
        self.input, self.size, self.seen = input, size, None

    def forward(self, x):
        self.seen = x.clone()
        bright = x[:, 0] > x[:, 0].mean()
        return torch.stack([(~bright).float(), bright.float()], dim=1) * 10


@pytest.mark.parametrize("convention, low, high", [
    ("minus_one_one", [-1.0] * 3, [1.0] * 3),
    ("zero_one", [0.0] * 3, [1.0] * 3),
    ("imagenet", [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
     [0.515 / 0.229, 0.544 / 0.224, 0.594 / 0.225]),
])
def test_external_model_gets_the_input_convention_and_size_it_expects(convention, low, high):
    images = torch.full((2, 3, 16, 24), -1.0)
    images[..., 12:] = 1.0  # right half white
    model = Recorder(convention, size=8)
    seg = CallableSegmenter(model)
    ids, probs = seg.segment(images), seg.probabilities(images)
    assert model.seen.shape == (2, 3, 8, 8)
    torch.testing.assert_close(model.seen[..., 0, 0], torch.tensor([low, low]))
    torch.testing.assert_close(model.seen[..., 0, -1], torch.tensor([high, high]))
    assert ids.shape == (2, 16, 24) and probs.shape == (2, 2, 16, 24)
    assert (ids[..., :10] == 0).all() and (ids[..., 14:] == 1).all()


class IdsAtHalfSize(torch.nn.Module):
    def forward(self, x):
        x = torch.nn.functional.avg_pool2d(x, 2)
        return (x[:, 0] > 0.5).long()  # [0, 1] input: bright pixels are class 1


def test_torchscript_ids_at_another_size_come_back_at_the_input_size_with_a_sidecar_json(tmp_path):
    path = tmp_path / "parser.ts"
    torch.jit.save(torch.jit.script(IdsAtHalfSize()), str(path))
    (tmp_path / "parser.ts.json").write_text(json.dumps({"classes": ["bg", "fg"], "input": "zero_one", "size": 32}))
    seg = load_segmenter(path, device="cpu")
    images = torch.full((3, 3, 20, 20), -1.0)
    images[:, :, 10:] = 1.0
    ids = seg.segment(images)
    assert ids.shape == (3, 20, 20) and seg.probabilities(images) is None
    assert (ids[:, :10] == 0).all() and (ids[:, 10:] == 1).all()


def test_masks_are_the_union_of_the_named_classes():
    ids = torch.tensor([[[0, 1, 2], [2, 1, 0]]])
    seg = CallableSegmenter(FixedOutput(ids))
    images = torch.zeros(1, 3, 2, 3)
    assert torch.equal(seg.masks(images, ["a", "c"]), ids != 1)
    assert torch.equal(seg.masks(images, "b"), ids == 1)
    assert seg.masks(images, ["a"]).dtype == torch.bool


IDS = torch.tensor([[[0, 1, 2], [2, 2, 0]]])
PROBS = torch.nn.functional.one_hot(IDS, 3).permute(0, 3, 1, 2).float() * 0.8 + 0.2 / 3


@pytest.mark.parametrize("output", [IDS, IDS[:, None].int(), (IDS, "aux"), {"out": IDS}, PROBS, PROBS.log() + 5],
                         ids=["ids", "ids_n1hw", "tuple", "dict_out", "probabilities", "logits"])
def test_every_accepted_output_form_gives_the_same_ids(output):
    seg = CallableSegmenter(FixedOutput(output))
    images = torch.zeros(1, 3, 2, 3)
    assert torch.equal(seg.segment(images), IDS)
    if isinstance(output, torch.Tensor) and output.is_floating_point():  # scores: probabilities come back as such
        torch.testing.assert_close(seg.probabilities(images), PROBS)


def test_unknown_class_name_error_lists_the_known_names():
    seg = CallableSegmenter(FixedOutput(torch.zeros(1, 2, 2, dtype=torch.long)))
    with pytest.raises(SegmenterError, match=r"unknown class 'sky'.*classes are: a, b, c"):
        seg.masks(torch.zeros(1, 3, 2, 2), ["a", "sky"])


@pytest.mark.parametrize("output, message", [
    (torch.zeros(1, 4), (r"output has shape \(1, 4\) float32; expected \(N=1, C=3, H, W\) class scores or "
                         r"\(N=1, H, W\) integer class ids")),
    (torch.zeros(1, 5, 2, 2), r"output has 5 channels .* but 3 classes are declared \(a, b, c\)"),
    (torch.zeros(1, 2, 2), r"shape \(1, 2, 2\) float32; expected"),  # ids must be integers
    (torch.full((1, 2, 2), 7), r"class ids in \[7, 7\] but only 3 classes"),
])
def test_model_output_of_the_wrong_form_names_what_it_got_and_what_is_expected(output, message):
    seg = CallableSegmenter(FixedOutput(output))
    with pytest.raises(SegmenterError, match=message):
        seg.segment(torch.zeros(1, 3, 2, 2))


@pytest.mark.parametrize("name", ["gone.safetensors", "gone.onnx", "gone.pt"])
def test_missing_segmenter_file_error_names_the_path(tmp_path, name):
    with pytest.raises(SegmenterError, match=f"{name} does not exist"):
        load_segmenter(tmp_path / name)


def test_unknown_segmenter_form_error_lists_the_accepted_forms(tmp_path):
    (tmp_path / "seg.h5").write_bytes(b"")
    with pytest.raises(SegmenterError, match=r"seg\.h5.*\.safetensors.*TorchScript.*\.onnx.*package\.module:attr"):
        load_segmenter(tmp_path / "seg.h5")


def test_pickled_state_dict_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(SegmenterError, match="not a TorchScript file"):
        load_segmenter(path)


def test_torchscript_without_class_names_says_where_to_put_them(tmp_path):
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(IdsAtHalfSize()), str(path))
    with pytest.raises(SegmenterError, match=r"no class names.*model\.pt\.json"):
        load_segmenter(path)


def test_cli_trains_evaluates_and_exports_a_segmenter(toyfaces16, tmp_path, capsys):
    seg_path, metrics_path = tmp_path / "seg.safetensors", tmp_path / "m.json"
    assert main(["segmenter", "train", "--data", str(toyfaces16), "--out", str(seg_path), "--steps", "20",
                 "--batch", "8", "--base-channels", "8", "--device", "cpu", "--no-progress"]) == 0
    assert "val mIoU" in capsys.readouterr().out
    assert main(["segmenter", "eval", "--segmenter", str(seg_path), "--data", str(toyfaces16),
                 "--out", str(metrics_path), "--device", "cpu", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "mouth" in table and "mIoU" in table
    result = json.loads(metrics_path.read_text())
    assert set(result["per_class_iou"]) == set(TOYFACES_CLASSES) and 0 <= result["miou"] <= 1
    assert result["n_images"] == 5  # round(48 * 0.1) held-out images
    assert main(["segmenter", "export", "--segmenter", str(seg_path), "--out", str(tmp_path / "seg.pt")]) == 0
    assert load_segmenter(tmp_path / "seg.pt", device="cpu").classes == TOYFACES_CLASSES


def test_cli_reports_a_missing_segmenter_in_one_line_with_exit_code_2(toyfaces16, tmp_path, capsys):
    code = main(["segmenter", "eval", "--segmenter", str(tmp_path / "nope.onnx"), "--data", str(toyfaces16)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("linkgan segmenter: error:") and "nope.onnx does not exist" in err and "\n" not in err
