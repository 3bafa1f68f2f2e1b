"""Matplotlib figures of learned preconditioners (paper figure 5), for TensorBoard and inspect."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files and TensorBoard
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fop_rl.optim import PreconditionerDiagnostics, panels


def _matrices(diagnostics: Sequence[PreconditionerDiagnostics]) -> list[PreconditionerDiagnostics]:
    """What to draw: every matrix (both factors of Kronecker FOP), not 1-D diagonals."""
    return [panel for panel in panels(diagnostics) if panel.matrix.dim() == 2]


def preconditioner_heatmaps(diagnostics: Sequence[PreconditionerDiagnostics]) -> Figure:
    """P of each layer as a heatmap, on a colour scale centred on zero."""
    shown = _matrices(diagnostics)
    cols = min(4, len(shown)) or 1
    rows = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, d in zip(axes.flat, shown, strict=False):
        m = d.matrix.float().numpy()
        bound = float(abs(m).max()) or 1.0
        image = ax.imshow(m, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
        ax.set_title(f"{d.name}\n{d.shown} {tuple(d.matrix.shape)}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def _wide(values: np.ndarray) -> bool:
    """Whether positive values span two decades or more: a log axis then shows several ticks."""
    positive = values[values > 0]
    return positive.size > 1 and positive.max() >= 100 * positive.min()


def preconditioner_summary(diagnostics: Sequence[PreconditionerDiagnostics]) -> Figure:
    """Per layer, a row titled with its name: P as a heatmap, the histogram of its entries, its
    eigenvalues largest first. A log axis only where the values span two decades (else one
    tick label would be all it shows); a 1 x 1 P is its value in words."""
    shown = _matrices(diagnostics)
    heights = [0.25 if d.matrix.numel() == 1 else 1.0 for d in shown]
    fig = plt.figure(figsize=(11, 3.2 * sum(heights)), layout="constrained")
    rows = np.atleast_1d(fig.subfigures(len(shown), 1, height_ratios=heights))
    for row, d in zip(rows, shown, strict=True):
        row.suptitle(d.name, fontsize=10, fontweight="bold")
        ax_map, ax_hist, ax_eig = row.subplots(1, 3)
        m = d.matrix.double().numpy()
        if m.size == 1:
            for ax in (ax_map, ax_hist, ax_eig):
                ax.axis("off")
            ax_map.text(0, 0.5, f"{d.shown} (1 x 1) = {m.item():.4g}", fontsize=10,
                        va="center", transform=ax_map.transAxes)
            continue
        bound = float(abs(m).max()) or 1.0
        image = ax_map.imshow(m, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
        row.colorbar(image, ax=ax_map, fraction=0.046, pad=0.04)
        ax_map.set_title(f"{d.shown} {m.shape}", fontsize=9)
        ax_map.set_xticks([])
        ax_map.set_yticks([])
        counts, _, _ = ax_hist.hist(m.flatten(), bins=50, color="tab:blue")
        ax_hist.set_title(f"entries of {d.shown}", fontsize=9)
        ax_hist.set(xlabel="value", ylabel="count")
        ax_hist.yaxis.set_major_locator(MaxNLocator(integer=True))
        if _wide(counts):
            ax_hist.set_yscale("log")
        eigs = d.eigenvalues.double().numpy()
        ax_eig.plot(np.arange(1, len(eigs) + 1), eigs, marker=".", lw=1)
        ax_eig.set_title("eigenvalues", fontsize=9)
        ax_eig.set(xlabel="rank (largest first)", ylabel="eigenvalue")
        ax_eig.xaxis.set_major_locator(MaxNLocator(integer=True))
        if _wide(eigs):
            ax_eig.set_yscale("symlog", linthresh=max(float(eigs[eigs > 0].min()), 1e-6))
    return fig
