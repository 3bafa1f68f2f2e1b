"""Matplotlib figures of learned preconditioners (paper figure 5), for TensorBoard and inspect."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files and TensorBoard
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

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
        ax.set_title(f"{d.name}: {d.shown} {tuple(d.matrix.shape)}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def preconditioner_summary(diagnostics: Sequence[PreconditionerDiagnostics]) -> Figure:
    """Per layer: P as a heatmap, the histogram of its entries, its sorted eigenvalues."""
    shown = _matrices(diagnostics)
    fig, axes = plt.subplots(len(shown), 3, figsize=(10, 2.8 * len(shown)), squeeze=False)
    for (ax_map, ax_hist, ax_eig), d in zip(axes, shown, strict=True):
        m = d.matrix.double()
        bound = float(m.abs().max()) or 1.0
        image = ax_map.imshow(m.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound,
                               aspect="auto")
        fig.colorbar(image, ax=ax_map, fraction=0.046, pad=0.04)
        ax_map.set_title(f"{d.name}: {d.shown} {tuple(m.shape)}", fontsize=9)
        ax_map.set_xticks([])
        ax_map.set_yticks([])
        ax_hist.hist(m.flatten().numpy(), bins=50, color="tab:blue")
        ax_hist.set_title("entries", fontsize=9)
        ax_hist.set_yscale("log")
        eigs = d.eigenvalues.numpy()
        ax_eig.plot(eigs, marker=".", lw=1)
        ax_eig.set_title("eigenvalues, sorted", fontsize=9)
        ax_eig.set_yscale("symlog", linthresh=1e-3)
    fig.tight_layout()
    return fig
