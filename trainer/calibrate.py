"""Confidence calibration: a temperature fitted on validation faces, and how far confidences are
from the accuracy they claim (expected calibration error, a reliability table and plot).

The edge classifies with an int8 model whose output is a softmax quantized to steps of 1/256, so
the temperature is fitted on what the edge has: the dequantized scores, with a score of 0 read as
half a step (edge.vision.classify.tempered), divided by T and soft-maxed again. T > 1 softens an
overconfident model, T < 1 sharpens an underconfident one; the arg-max (the label) never changes.
"""
from __future__ import annotations

import numpy as np

from edge.vision.classify import tempered

ECE_BINS = 15


def fit_temperature(predict_tempered, labels: np.ndarray, *, lo: float = 0.25, hi: float = 8.0) -> float:
    """The T in [lo, hi] that minimizes the negative log-likelihood of ``labels`` under
    ``predict_tempered(T)`` ((N, 7) probabilities): a coarse grid on log T, then a golden-section
    search around its best point (the NLL of one temperature is convex in practice)."""
    labels = np.asarray(labels, np.int64)

    def nll(t: float) -> float:
        probs = predict_tempered(t)
        return float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12))))

    grid = np.exp(np.linspace(np.log(lo), np.log(hi), 25))
    values = [nll(t) for t in grid]
    i = int(np.argmin(values))
    a, b = np.log(grid[max(0, i - 1)]), np.log(grid[min(len(grid) - 1, i + 1)])
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(np.exp(c)), nll(np.exp(d))
    for _ in range(20):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(np.exp(d))
    return round(float(np.exp((a + b) / 2)), 4)


def temperature_for_scores(scores: list[np.ndarray], labels: np.ndarray, floor: float) -> float:
    """Fit T on the int8 model's dequantized scores of each view (a list of (N, 7) arrays: the
    views the edge averages), tempering each view before averaging, as the edge does."""
    return fit_temperature(lambda t: sum(tempered(s, t, floor) for s in scores) / len(scores), labels)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Expected calibration error over ``bins`` equal-width confidence bins (the usual 15), with
    the table behind it: per bin its count, mean confidence and accuracy."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        conf = float(confidence[inside].mean()) if n else 0.0
        acc = float(correct[inside].mean()) if n else 0.0
        ece += n / max(1, len(confidence)) * abs(acc - conf)
        table.append({"lo": round(float(edges[b]), 4), "hi": round(float(edges[b + 1]), 4), "n": n,
                      "confidence": round(conf, 4), "accuracy": round(acc, 4)})
    return {"ece": round(float(ece), 4), "bins": bins, "n": len(confidence), "table": table}


def calibration_of(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    probs = np.asarray(probs)
    return reliability(probs.max(1), probs.argmax(1) == np.asarray(labels), bins)


def plot_reliability(result: dict, png) -> None:
    """A reliability diagram: accuracy against mean confidence per bin, bar width = the bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cal = result["calibration"]
    table = [row for row in cal["table"] if row["n"]]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.bar([r["lo"] for r in table], [r["accuracy"] for r in table], width=1.0 / cal["bins"], align="edge",
           edgecolor="black", color="#6a9fd4", label="accuracy in the bin")
    ax.plot([r["confidence"] for r in table], [r["accuracy"] for r in table], "o", color="black", ms=3,
            label="(mean confidence, accuracy)")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfectly calibrated")
    ax.set_xlim(0, 1); ax.set_ylim(0, 1)
    ax.set_xlabel("confidence"); ax.set_ylabel("accuracy")
    ax.set_title(f"{result['mode']}: ECE {cal['ece']:.3f} ({cal['bins']} bins, n={cal['n']})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def view_scores(predict_fn, faces: np.ndarray, flip: bool, zoom: float) -> list[np.ndarray]:
    """The int8 model's untempered scores (clipped at 0) of each view the edge averages."""
    from edge.vision.classify import tta_views

    return [np.clip(predict_fn(view), 0.0, None) for view in tta_views(faces, flip, zoom)]


def fit_calibration(predict_fn, faces: np.ndarray, labels: np.ndarray, floor: float, *, flip: bool, zoom: float,
                    source: str) -> dict:
    """The sidecar's ``calibration`` object: the temperature fitted on these validation faces with
    these views (``predict_fn`` returns untempered dequantized scores), and the ECE before/after."""
    scores = view_scores(predict_fn, faces, flip, zoom)
    temperature = temperature_for_scores(scores, labels, floor)
    before = calibration_of(sum(scores) / len(scores), labels)
    after = calibration_of(sum(tempered(s, temperature, floor) for s in scores) / len(scores), labels)
    return {"temperature": temperature, "fitted_on": source, "n": len(labels),
            "scores": "int8 model, dequantized", "views": {"flip": flip, "zoom": zoom},
            "val_ece_before": before["ece"], "val_ece_after": after["ece"]}
