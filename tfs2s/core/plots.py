"""Attention heatmaps as PNG files: over source tokens (text models) and over image columns (image models).

Both draw on a bare ``matplotlib.figure.Figure`` (no pyplot), so plotting neither switches the process's
backend nor leaves figures in pyplot's registry.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tfs2s.core.errors import InputError


def _figure(figsize: tuple[float, float], what: str):
    try:
        from matplotlib.figure import Figure  # optional dependency: only plotting needs it
    except ImportError as e:
        raise ImportError(f"{what} needs matplotlib: pip install 'matplotlib>=3.8'") from e
    return Figure(figsize=figsize)


def _vmax(weights: np.ndarray) -> float:
    # The colour scale tops at the largest weight (an all-zero row would make an empty range).
    return max(float(weights.max()), 1e-6)


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_text_alignment(alignment, source_tokens: Sequence[str], target_tokens: Sequence[str], path: str,
                        title: str | None = None) -> str:
    """Saves an attention heatmap (rows: target tokens, columns: source tokens) as a PNG.

    Args:
        alignment: ``[target_length, source_length]`` weights (at least as large as the token lists).
        source_tokens: Column labels.
        target_tokens: Row labels.
        path: Output PNG path.
        title: Optional figure title.

    Returns:
        ``path``.
    """
    weights = np.asarray(alignment)[: len(target_tokens), : len(source_tokens)]
    fig = _figure((1 + 0.45 * len(source_tokens), 1 + 0.4 * len(target_tokens)), "plot_text_alignment")
    ax = fig.subplots()
    ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=_vmax(weights), aspect="auto")
    ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(target_tokens)), target_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_image_alignment(image: np.ndarray, alignment: np.ndarray, tokens: Sequence[str], path: str) -> str:
    """Draws, for each output token, the image with its attention over image columns as a heat overlay.

    Args:
        image: ``[height, width]`` or ``[height, width, channels]`` values in [0, 1] (or uint8).
        alignment: ``[tokens, positions]`` attention weights; the encoder reads the image as a left-to-right
            sequence of ``positions <= width`` column features, so each position is stretched over
            ``width / positions`` pixel columns.
        tokens: One label per alignment row.
        path: Output file (PNG by its extension).

    Returns:
        ``path``.

    Raises:
        InputError: No tokens, or an alignment whose shape does not fit the tokens and the image width.
    """
    image = np.asarray(image, np.float32)
    image = image / 255.0 if image.max(initial=0.0) > 1.0 else image
    image = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    alignment = np.asarray(alignment, np.float32)
    if not len(tokens):
        raise InputError("nothing to plot: the output has no tokens")
    width = image.shape[1]
    if alignment.ndim != 2 or alignment.shape[0] != len(tokens) or not 0 < alignment.shape[1] <= width:
        raise InputError(f"alignment must be [tokens={len(tokens)}, positions<={width}], got {alignment.shape}")
    columns = np.arange(width) * alignment.shape[1] // width  # pixel column -> memory position
    fig = _figure((max(3.0, width / 50), 0.25 + 0.9 * len(tokens) * image.shape[0] / 50), "plot_image_alignment")
    axes = fig.subplots(len(tokens), 1, squeeze=False)[:, 0]
    for ax, weights, token in zip(axes, alignment, tokens):
        heat = np.broadcast_to(weights[columns], image.shape[:2])
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, aspect="auto")
        ax.imshow(heat, cmap="inferno", alpha=0.5, vmin=0.0, vmax=_vmax(weights), aspect="auto")
        ax.set_ylabel(token, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)
