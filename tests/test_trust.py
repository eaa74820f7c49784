"""No file that linkgan reads can make it import or run code: a segmenter named by a checkpoint's
config or a links YAML loads only if it is data, or if the user named it too."""

from __future__ import annotations

import json
import sys

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from linkgan.checkpoint import resolve_checkpoint
from linkgan.cli import main
from linkgan.pipeline import LinkGANPipeline
from linkgan.segment import SegmenterError, trust_segmenter, untrust_segmenter

# Importing this module leaves a marker file: the proof that a file made linkgan run code.
EVIL = '''
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from linkgan.segment import Segmenter


class Everything(Segmenter):
    def __init__(self):
        super().__init__(["other", "face"])

    def predict(self, x):
        return (x[:, 0] > -2).long()


seg = Everything()
'''


@pytest.fixture
def evil(tmp_path, monkeypatch):
    marker = tmp_path / "IMPORTED"
    (tmp_path / "evilseg.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("linkgan.segment.adapters._TRUSTED_SPECS", set())
    yield marker
    sys.modules.pop("evilseg", None)


def checkpoint_naming(tmp_path, segmenter: str):
    """builtin:toyfaces with its eyes link turned into a semantic link whose segmenter is ``segmenter``."""
    src = resolve_checkpoint("builtin:toyfaces")
    with safe_open(str(src), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(metadata["config"])
    config["links"][0]["region"] = {"semantic": ["face"], "segmenter": segmenter}
    metadata["config"] = json.dumps(config)
    out = tmp_path / "shared.safetensors"
    save_file(tensors, str(out), metadata)
    return out


def test_a_checkpoint_cannot_make_linkgan_import_its_segmenter(tmp_path, evil, capsys):
    ckpt = checkpoint_naming(tmp_path, "evilseg:seg")
    # Loading and generating never touch the segmenter.
    assert main(["generate", "--ckpt", str(ckpt), "--seeds", "0-1", "--out", str(tmp_path / "g.png")]) == 0
    pipe = LinkGANPipeline.load(ckpt, device="cpu")
    assert main(["edit", "--ckpt", str(ckpt), "--link", "eyes", "--seeds", "0", "--n", "2",
                 "--out", str(tmp_path / "e.png")]) == 2
    err = capsys.readouterr().err
    assert "evilseg:seg is Python code" in err and "--segmenter evilseg:seg" in err
    assert main(["metrics", "--ckpt", str(ckpt), "--metrics", "mse1k"]) == 2
    with pytest.raises(SegmenterError, match="never runs code because a file says so"):
        pipe.links["eyes"].region.masks_for(pipe.generate([0], output="tensor"))
    assert not evil.exists() and "evilseg" not in sys.modules
    assert not (tmp_path / "e.png").exists()


def test_the_user_may_name_the_same_segmenter_themselves(tmp_path, evil):
    ckpt = checkpoint_naming(tmp_path, "evilseg:seg")
    assert main(["edit", "--ckpt", str(ckpt), "--link", "eyes", "--seeds", "0", "--n", "2",
                 "--segmenter", "evilseg:seg", "--out", str(tmp_path / "e.png")]) == 0
    assert evil.exists() and (tmp_path / "e.png").exists()


def test_a_links_file_cannot_name_a_torchscript_segmenter_unless_trusted(tmp_path, evil, capsys):
    program = tmp_path / "parser.pt"  # TorchScript is a program; the gate comes before the file is opened
    (tmp_path / "links.yaml").write_text(
        f"links:\n  - {{name: face, region: {{semantic: [face], segmenter: '{program}'}}, axes: 64}}\n")
    args = ["metrics", "--ckpt", "builtin:toyfaces-base", "--links", str(tmp_path / "links.yaml"), "--metrics", "mse1k"]
    assert main(args) == 2
    assert "is a TorchScript program" in capsys.readouterr().err
    trust_segmenter(program)
    try:
        assert main(args) == 2
        assert f"segmenter file {program} does not exist" in capsys.readouterr().err
    finally:
        untrust_segmenter(program)


def test_data_segmenters_named_by_files_still_load(tmp_path, evil):
    """A built-in .safetensors segmenter is data: a checkpoint may name it."""
    from linkgan.segment import load_segmenter

    with pytest.raises(SegmenterError, match="does not exist"):  # past the gate: only the file is missing
        load_segmenter(tmp_path / "seg.safetensors", named_by="a checkpoint")
    with pytest.raises(SegmenterError, match="Python code, named by a checkpoint"):
        load_segmenter("evilseg:seg", named_by="a checkpoint")
    assert load_segmenter("evilseg:seg").classes == ["other", "face"]  # the user's own call
    assert evil.exists()
