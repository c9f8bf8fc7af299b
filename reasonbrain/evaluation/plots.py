"""Small PNG charts for evaluation reports (matplotlib's object API: no pyplot, no global figure state)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def bar_chart(path: str | os.PathLike, labels: Sequence[str], values: Sequence[float], *, title: str = "",
              ylabel: str = "", errors: Sequence[tuple[float, float]] | None = None,
              highlight: Sequence[str] = ("overall",), percent: bool = False) -> str:
    """Bars with value labels; ``errors`` = (low, high) interval per bar; NaN bars are left empty."""
    fig = _figure(max(4.0, 0.9 * len(labels) + 1.5), 3.4)
    ax = fig.add_subplot()
    vals = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    colors = ["#c2410c" if lab in highlight else "#2563eb" for lab in labels]
    x = np.arange(len(labels))
    ax.bar(x, np.nan_to_num(vals), color=colors)
    tops = vals.copy()
    if errors is not None:
        lo = np.array([e[0] for e in errors], dtype=float)
        hi = np.array([e[1] for e in errors], dtype=float)
        ax.errorbar(x, vals, yerr=np.vstack([vals - lo, hi - vals]), fmt="none", ecolor="black", capsize=4)
        tops = np.fmax(vals, hi)  # value labels above the error bars
    for xi, v, top in zip(x, vals, tops):
        if not math.isnan(v):
            ax.annotate(f"{v:.1%}" if percent else f"{v:.3f}", (xi, top), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, list(labels), rotation=20 if len(labels) > 4 else 0)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.savefig(path)
    return str(path)


def bar_grid(path: str | os.PathLike, labels: Sequence[str], panels: Sequence[tuple[str, Sequence[float], bool]], *,
             title: str = "", highlight: Sequence[str] = ("overall",), columns: int = 3) -> str:
    """One figure, one bar panel per ``(title, values, percent)`` over the same ``labels``; NaN bars empty."""
    n = max(1, len(panels))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = _figure(cols * max(3.2, 0.55 * len(labels) + 1.2), rows * 2.8 + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colors = ["#c2410c" if lab in highlight else "#2563eb" for lab in labels]
    x = np.arange(len(labels))
    for ax, (name, values, percent) in zip(axes, panels):
        vals = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
        ax.bar(x, np.nan_to_num(vals), color=colors)
        for xi, v in zip(x, vals):
            if not math.isnan(v):
                ax.annotate(f"{v:.0%}" if percent else f"{v:.3f}", (xi, v), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(x, list(labels), rotation=30, fontsize=8)
        ax.set_title(name, fontsize=10)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.savefig(path)
    return str(path)


def heatmap(path: str | os.PathLike, matrix: np.ndarray, labels: Sequence[str], *, title: str = "",
            fmt: str = "{:.2f}") -> str:
    """A labelled square heatmap (rows vs columns), NaN cells blank."""
    n = len(labels)
    fig = _figure(1.0 + 0.8 * n, 0.8 + 0.7 * n)
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(matrix), vmin=0.0, vmax=1.0, cmap="RdBu")
    for i in range(n):
        for j in range(n):
            if not math.isnan(matrix[i, j]):
                ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(n), list(labels), rotation=30)
    ax.set_yticks(range(n), list(labels))
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path)
    return str(path)


def scatter(path: str | os.PathLike, x: Sequence[float], y: Sequence[float], labels: Sequence[str], *,
            title: str = "", xlabel: str = "", ylabel: str = "") -> str:
    fig = _figure(5.0, 3.6)
    ax = fig.add_subplot()
    ax.scatter(x, y, color="#2563eb")
    for xi, yi, lab in zip(x, y, labels):
        ax.annotate(lab, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.savefig(path)
    return str(path)
