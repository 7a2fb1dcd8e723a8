import sys

import numpy as np
import pytest

from tfs2s.core.plots import plot_image_alignment, plot_text_alignment


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")  # IHDR width, height


def test_text_alignment_is_a_png_sized_by_its_tokens(tmp_path):
    path = plot_text_alignment(np.eye(3, 4), ["a", "b", "c", "</s>"], ["x", "y", "</s>"], str(tmp_path / "a.png"), "t")
    assert path == str(tmp_path / "a.png")
    # 100 dpi; 1 inch plus 0.45 per source token wide, 1 plus 0.4 per output token high.
    assert _png_size(path) == (280, 220)
    # Extra rows and columns beyond the token lists are cut, not plotted.
    big = plot_text_alignment(np.ones((9, 9)), ["a", "b"], ["x"], str(tmp_path / "b.png"))
    assert _png_size(big) == (190, 140)


def test_image_alignment_one_panel_per_token(tmp_path):
    image = np.tile(np.linspace(0, 255, 200, dtype=np.float32), (50, 1))[..., None]  # uint8 range, one channel
    alignment = np.eye(3, 50, k=10, dtype=np.float32)
    path = plot_image_alignment(image, alignment, ["a", "b", "</s>"], str(tmp_path / "align.png"))
    assert _png_size(path) == (400, 295)  # max(3, 200 / 50) inches wide; 0.25 + 0.9 * 3 tokens * 50 / 50 high
    with pytest.raises(ValueError, match=r"alignment must be \[tokens=1, positions<=200\]"):
        plot_image_alignment(image, alignment, ["a"], str(tmp_path / "bad.png"))
    with pytest.raises(ValueError, match="positions<=200"):
        plot_image_alignment(image, np.ones((1, 201)), ["a"], str(tmp_path / "bad.png"))
    with pytest.raises(ValueError, match="no tokens"):
        plot_image_alignment(image, np.ones((0, 5)), [], str(tmp_path / "bad.png"))


def test_plots_leave_pyplot_alone(tmp_path):
    plot_text_alignment(np.eye(2), ["a", "b"], ["x", "y"], str(tmp_path / "a.png"))
    if "matplotlib.pyplot" in sys.modules:  # imported by something else: it must hold no figure of ours
        assert not sys.modules["matplotlib.pyplot"].get_fignums()
