"""What a student model would cost here, before any of them is trained: inference time of
candidate architectures and input sizes on this machine's CPU engines, beside MediaPipe's
selfie segmenter (landscape) measured in the same run, plus the test-split IoU of those
that have been trained. Writes candidates.json, candidates.md and candidates.png (IoU
against ms, untrained candidates drawn on the x axis only) into --out.

    python -m benchmarks.candidates [--rounds 5] [--runs 100] [--threads 2] [--out DIR]

Each candidate is a segmentation-models-pytorch U-Net with random weights, exported to
ONNX exactly as `train export` exports (dynamic height and width), and run through vbg's
own OnnxRuntimeEngine and OpenVINOEngine, so the numbers are the runtime's. Candidates run
interleaved, one block of runs each per round, the order rotating; reported: the median of
the rounds' medians, and the spread.

The encoders other than mobilenet_v2 have no ImageNet weights that can be had offline
here: their rows say what they would cost, for deciding whether weights are worth
bringing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Candidate:
    name: str
    encoder: str
    decoder: tuple[int, ...]
    height: int
    width: int
    weights_offline: bool  # ImageNet weights available without internet
    iou_live: float | None = None  # test split, live path, where trained (with its source)
    iou_source: str = ""


def candidates() -> list[Candidate]:
    report = REPO / "assets" / "models" / "report" / "eval_test_no_tta.json"
    default_iou = json.loads(report.read_text())["iou"] if report.is_file() else None
    mv2 = "mobilenet_v2"
    return [
        Candidate(
            "default (mv2, dec 64..8, 160x288)",
            mv2,
            (64, 32, 24, 16, 8),
            160,
            288,
            True,
            default_iou,
            "assets/models/report/eval_test_no_tta.json",
        ),  # fmt: skip
        Candidate("mv2, dec 64..8, 144x256", mv2, (64, 32, 24, 16, 8), 144, 256, True),
        Candidate("mv2, dec 32..8, 160x288", mv2, (32, 16, 16, 8, 8), 160, 288, True),
        Candidate("mv2, dec 32..8, 144x256", mv2, (32, 16, 16, 8, 8), 144, 256, True),
        Candidate("mv2, dec 16..8, 128x224", mv2, (16, 16, 8, 8, 8), 128, 224, True),
        Candidate(
            "mnv3-small-075, dec 32..8, 144x256",
            "timm-mobilenetv3_small_075",
            (32, 16, 16, 8, 8),
            144,
            256,
            False,
        ),  # fmt: skip
        Candidate(
            "mnv3-large-075, dec 32..8, 144x256",
            "timm-mobilenetv3_large_075",
            (32, 16, 16, 8, 8),
            144,
            256,
            False,
        ),  # fmt: skip
        Candidate(
            "efficientnet-b0, dec 32..8, 144x256",
            "efficientnet-b0",
            (32, 16, 16, 8, 8),
            144,
            256,
            False,
        ),  # fmt: skip
    ]


def export_candidate(c: Candidate, folder: Path) -> tuple[Path, int]:
    """ONNX file + model card for a random-weight candidate; returns (card, parameters)."""
    import segmentation_models_pytorch as smp
    import torch

    from vbg.card import InputSpec, ModelCard, OutputSpec, sha256_of

    torch.manual_seed(0)
    model = smp.Unet(encoder_name=c.encoder, encoder_weights=None, decoder_channels=c.decoder)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    slug = "".join(ch if ch.isalnum() else "-" for ch in c.name)[:40]
    onnx_path = folder / f"{slug}.onnx"
    torch.onnx.export(
        model,
        torch.zeros(1, 3, c.height, c.width),
        str(onnx_path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {2: "height", 3: "width"}, "logits": {2: "height", 3: "width"}},
        opset_version=17,
        dynamo=False,
    )
    card = ModelCard(
        name=slug,
        architecture="Unet",
        encoder=c.encoder,
        decoder_channels=c.decoder,
        input=InputSpec(height=c.height, width=c.width),
        output=OutputSpec(),
        files={"onnx": onnx_path.name},
        sha256={onnx_path.name: sha256_of(onnx_path)},
        training={"data": "none: random weights, for timing"},
    )
    return card.save(folder / f"{slug}.json"), params


def time_runs(run, x: np.ndarray, n: int) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        run(x)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.peers import DEFAULT_CACHE, _PeerEngine, ensure_peer_model
    from vbg.bench import machine_info
    from vbg.card import load_card
    from vbg.engines import available_engines, create_engine

    engines = [e for e in ("onnxruntime", "openvino") if e in available_engines()]
    rows: dict[str, dict[str, Any]] = {}
    runners: list[tuple[str, str, Any, np.ndarray]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in candidates():
            card_path, params = export_candidate(c, Path(tmp))
            card = load_card(card_path)
            rows[c.name] = {
                "encoder": c.encoder,
                "decoder": list(c.decoder),
                "input": f"{c.height}x{c.width}",
                "parameters": params,
                "imagenet_weights_offline": c.weights_offline,
                "iou_live": c.iou_live,
                "iou_source": c.iou_source,
                "ms": {},
            }
            x = np.random.default_rng(0).standard_normal((1, 3, c.height, c.width))
            for e in engines:
                eng = create_engine(e, card, threads=args.threads)
                runners.append((c.name, e, eng, x.astype(np.float32)))
        peer_note = ""
        try:
            model = args.peer_model or ensure_peer_model(DEFAULT_CACHE)
            peer = _PeerEngine(Path(model), args.threads)
            px = np.random.default_rng(0).random((1, peer.height, peer.width, 3))
            name = "MediaPipe selfie (landscape), LiteRT"
            rows[name] = {
                "input": f"{peer.height}x{peer.width}",
                "parameters": None,
                "iou_live": args.peer_iou,
                "iou_source": "README: mp+vbg-post on the test split" if args.peer_iou else "",
                "ms": {},
            }
            runners.append((name, "litert", peer, px.astype(np.float32)))
        except Exception as e:  # no pip access, no LiteRT: the candidates still count
            peer_note = f"peer not measured: {e}"
        for _, _, eng, x in runners:  # warm-up
            for _ in range(10):
                eng.run(x)
        per_round: dict[tuple[str, str], list[float]] = {(r[0], r[1]): [] for r in runners}
        for rnd in range(args.rounds):
            order = runners[rnd % len(runners) :] + runners[: rnd % len(runners)]
            for name, e, eng, x in order:
                per_round[(name, e)].append(time_runs(eng.run, x, args.runs))
        for (name, e), values in per_round.items():
            rows[name]["ms"][e] = {
                "median": round(statistics.median(values), 3),
                "min": round(min(values), 3),
                "max": round(max(values), 3),
            }
        for _, _, eng, _ in runners:
            eng.close()
    return {
        "machine": machine_info(args.threads),
        "threads": args.threads,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "rows": rows,
        "note": peer_note,
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    engines = sorted({e for r in report["rows"].values() for e in r["ms"]})
    lines = [
        f"# Candidate students: inference ms ({m.get('cpu')}, {report['threads']} threads, "
        f"{report['rounds']} rounds x {report['runs_per_round']} runs)",
        "",
        "| model | input | parameters | ImageNet weights offline | "
        + " | ".join(f"{e} ms (spread)" for e in engines)
        + " | test IoU (live) |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in engines) + " | --- |",
    ]
    for name, r in report["rows"].items():
        cells = []
        for e in engines:
            v = r["ms"].get(e)
            cells.append(f"{v['median']} ({v['min']}-{v['max']})" if v else "")
        params = f"{r['parameters'] / 1e6:.2f} M" if r.get("parameters") else ""
        offline = {True: "yes", False: "no"}.get(r.get("imagenet_weights_offline"), "")
        iou = f"{r['iou_live']:.4f}" if r.get("iou_live") else "not trained"
        lines.append(
            f"| {name} | {r['input']} | {params} | {offline} | {' | '.join(cells)} | {iou} |"
        )
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, r in report["rows"].items():
        ms = r["ms"].get("openvino") or r["ms"].get("litert") or r["ms"].get("onnxruntime")
        if not ms:
            continue
        x = ms["median"]
        if r.get("iou_live"):
            ax.scatter([x], [r["iou_live"]], s=40)
            ax.annotate(
                name, (x, r["iou_live"]), fontsize=7, xytext=(4, 4), textcoords="offset points"
            )
        else:  # untrained: its cost only, a line with its name along it
            ax.axvline(x, color="0.85", lw=0.8)
            ax.text(x, 0.02, name, fontsize=6, rotation=90, transform=ax.get_xaxis_transform(),
                    va="bottom", ha="right")  # fmt: skip
    lo, hi = ax.get_ylim()
    ax.set_ylim(min(lo, 0.85), max(hi, 0.95))
    ax.set_xlabel("inference ms per frame (OpenVINO; MediaPipe: LiteRT)")
    ax.set_ylabel("test-split IoU, live path")
    ax.set_title("Candidates: trained ones as points, untrained as their cost only")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=100, help="timed runs per block")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peer-model", type=Path, default=None, help="a local .tflite")
    p.add_argument("--peer-iou", type=float, default=None, help="the peer's measured IoU")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    report = measure(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "candidates.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "candidates.md").write_text(markdown(report))
    with contextlib.suppress(ImportError):
        plot(report, args.out / "candidates.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
