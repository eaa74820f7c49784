"""The command line explains itself and drives the dataset tools."""

import pytest

from linkgan.cli import build_parser, main
from linkgan.config import ModelConfig, TrainConfig, options_of
from linkgan.data import ImageDataset

SUBCOMMANDS = [["demo"], ["dataset"], ["dataset", "toyfaces"], ["dataset", "scenes"], ["dataset", "fashion-mnist"],
               ["dataset", "convert"], ["train"], ["generate"], ["info"]]


@pytest.mark.parametrize("cmd", SUBCOMMANDS, ids=" ".join)
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main(cmd + ["--help"])
    assert e.value.code == 0
    assert "usage: linkgan" in capsys.readouterr().out


def test_train_help_documents_every_config_field(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for cls in (ModelConfig, TrainConfig):
        for o in options_of(cls):  # nested groups' options too: --link-alpha, --plane-res
            assert o.flag in text, o.flag
            assert o.field.metadata["help"].split()[0] in text
    assert "--config under 'train: link:'" in text and "--config under 'model: triplane:'" in text


def test_dataset_commands_write_archives(tmp_path, capsys):
    out = tmp_path / "tf.zip"
    assert main(["dataset", "toyfaces", "--out", str(out), "--n", "6", "--res", "16", "--workers", "1",
                 "--no-progress"]) == 0
    ds = ImageDataset(out, return_masks=True)
    assert len(ds) == 6 and ds.classes[0] == "background"
    img, mask = ds[0]
    assert img.shape == (3, 16, 16) and mask.shape == (16, 16)
    assert main(["dataset", "scenes", "--out", str(tmp_path / "sc.zip"), "--n", "4", "--res", "16",
                 "--workers", "1", "--no-progress"]) == 0


def test_parser_builds_without_importing_heavy_modules():
    assert build_parser().prog == "linkgan"
