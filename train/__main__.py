"""`python -m train {check,fit,evaluate,export,recover-torch,quantize} ...`
(also under `torchrun -m train fit`).

Each subcommand module exposes add_arguments(parser) and run(args) -> exit code; heavy
imports (torch, smp, matplotlib) happen inside run(), so `--help` stays quick. An error the
user can act on is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vbg import VbgError

COMMANDS = {
    "check": ("train.check", "verify a COCO person set and write its exploratory report"),
    "fit": ("train.fit", "train (resumable; torchrun for several processes/GPUs)"),
    "evaluate": ("train.evaluate", "Dice/IoU/pixel accuracy of a run on its test split"),
    "export": ("train.export", "best checkpoint -> ONNX + PyTorch weights + model card"),
    "recover-torch": (
        "train.recover_torch",
        "rebuild a card's lost PyTorch weights from its ONNX file (BatchNorms unfolded)",
    ),
    "composite": ("train.composite", "synthetic composites and moving clips from labelled people"),
    "convert": (
        "train.convert",
        "a public person dataset as its publisher ships it -> COCO person set",
    ),
    "quantize": ("train.quantize", "a card's ONNX model as INT8 (static, calibrated) + its card"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train", description="Train vbg's person segmenter on COCO-format data."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip())
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except VbgError as e:
        print(f"train {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        print(f"train {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"train {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
