"""The ``linkgan`` command line: a thin layer over the Python API.

Each subcommand parses its options, calls one API function, and turns the library's
user-facing errors into a one-line message and exit code 2 (no stack trace). One module per
command group: train.py, edit.py (generate, edit, invert, encoder), data.py (dataset, import,
demo), evaluate.py (metrics, info, serve); linkgan.segment.cli adds `segmenter`.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import DISK_ERRNOS, InputError
from ..segment.cli import add_segmenter_commands
from .data import add_data_commands, add_demo_command
from .edit import add_image_commands
from .evaluate import add_evaluation_commands, add_serve_command
from .train import add_train_command


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(
        prog="linkgan",
        description="Train StyleGAN2 generators whose latent axes are linked to image regions (LinkGAN), "
                    "generate images, and edit them.",
        epilog="Run 'linkgan COMMAND --help' for the options of a command.")
    p.add_argument("--version", action="version", version=f"linkgan {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    add_demo_command(sub, fmt)
    add_data_commands(sub, fmt)
    add_train_command(sub, fmt)
    add_image_commands(sub, fmt)
    add_evaluation_commands(sub, fmt)
    add_serve_command(sub, fmt)
    add_segmenter_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..fid import MetricsExtraError
    from ..losses import NonFiniteLossError

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        return args.func(args)
    # Bad input (InputError and its kinds: ConfigError, CheckpointError, DatasetError, ...) is one
    # line and exit 2; anything else is a bug and keeps its traceback.
    except (InputError, NonFiniteLossError, FileNotFoundError, NotImplementedError, MetricsExtraError) as e:
        print(f"linkgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # A full disk, a quota or a read-only folder while writing logs or images (checkpoints and
        # archives say more themselves): the machine's, not a bug.
        if e.errno not in DISK_ERRNOS:
            raise
        where = f" {e.filename}" if e.filename else ""
        print(f"linkgan {args.command}: error: cannot write{where} ({e.strerror}). Free some space or write "
              "elsewhere; checkpoints already written are intact", file=sys.stderr)
        return 2


__all__ = ["main", "build_parser"]
