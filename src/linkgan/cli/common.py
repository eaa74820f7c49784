"""What the command modules share: argparse types with ranges, and loading a pipeline with --links."""

from __future__ import annotations

import argparse

from ..networks import MAX_SEED


def _number_in(kind, low=None, high=None, low_ok=True):
    """An argparse type: a finite int or float within [low, high] (above low when not low_ok)."""
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if low is not None and (value < low if low_ok else value <= low) or high is not None and value > high:
            span = (f"from {low} to {high}" if high is not None else
                    f"{'at least' if low_ok else 'above'} {low}")
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


SEED = _number_in(int, 0, MAX_SEED)
COUNT = _number_in(int, 1)
STEPS = _number_in(int, 0)
PSI = _number_in(float, -10.0, 10.0)


def load_pipeline(args):
    """The checkpoint's pipeline with the --links and --segmenter options of edit and metrics applied."""
    from ..pipeline import LinkGANPipeline

    pipe = LinkGANPipeline.load(args.ckpt, device=args.device)
    if args.links:
        pipe.use_links(args.links, segmenter=args.segmenter)
    elif args.segmenter:
        pipe.use_segmenter(args.segmenter)
    return pipe
