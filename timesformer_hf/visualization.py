"""Pictures: explanation maps over a clip's frames (a PNG grid, a GIF or an MP4) and class timelines of long videos.

matplotlib is optional (`pip install 'timesformer-hf[viz]'`). Figures are drawn on their own Agg canvas, never
through pyplot, so the caller's backend and open figures are left alone. Files are written atomically.

Example:

```python
>>> import numpy as np
>>> from timesformer_hf.visualization import plot_explanation
>>> frames, maps = np.random.rand(8, 32, 32, 3), np.random.rand(8, 32, 32)
>>> plot_explanation(frames, maps, "explain.png", title="right_2 97%")  # doctest: +SKIP
```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .extras import require
from .files import write_atomically

__all__ = ["ANIMATION_SUFFIXES", "animate_explanation", "plot_explanation", "plot_timeline"]

ANIMATION_SUFFIXES = (".gif", ".mp4")
COLORMAP = "jet"
MAX_ALPHA = 0.6  # the map's maximum is this opaque; where it is zero, the frame shows through


def new_figure(feature: str, size: tuple[float, float], layout: str | None = None) -> tuple[Any, Any]:
    """A matplotlib `Figure` of `size` inches on its own Agg canvas (not pyplot: the caller's backend and figures are
    left alone); `feature` names what needs matplotlib in the install message."""
    Figure = require("matplotlib.figure", feature).Figure
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", feature).FigureCanvasAgg
    figure = Figure(figsize=size, dpi=100, layout=layout)
    return figure, FigureCanvasAgg(figure)


def _overlays(maps: np.ndarray, feature: str) -> np.ndarray:
    """`(frames, H, W)` maps -> `(frames, H, W, 4)` RGBA layers: scaled by the clip's maximum (so frames compare),
    coloured, and as transparent as they are weak."""
    colormaps = require("matplotlib", feature).colormaps
    maps = np.asarray(maps, dtype=np.float64)
    scaled = maps / maps.max() if maps.max() > 0 else maps
    layers = colormaps[COLORMAP](scaled)
    layers[..., 3] = MAX_ALPHA * scaled
    return layers


def plot_explanation(
    frames: np.ndarray,
    maps: np.ndarray,
    path: str | os.PathLike,
    title: str = "",
    captions: Sequence[str] | None = None,
) -> None:
    """
    A PNG grid of the frames, each with its map overlaid (colour map, transparent where the map is weak).

    Args:
        frames: `(frames, H, W, 3)` RGB, floats in `[0, 1]` or uint8.
        maps: `(frames, H, W)` non-negative maps (e.g. upsampled `relevance`); scaled by their maximum over the clip.
        path: The PNG to write.
        title: Above the grid (e.g. the top labels and scores).
        captions: One line above each frame (e.g. its time).
    """
    feature = "The explanation picture"
    layers = _overlays(maps, feature)
    num_frames, height, width = layers.shape[:3]
    columns = min(num_frames, 4 if num_frames <= 16 else 8)
    rows = -(-num_frames // columns)
    panel = 2.4
    size = (columns * panel + 0.8, rows * (panel * height / width + 0.3) + 0.5)
    figure, _ = new_figure(feature, size, layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(grid.flat):
        axes.set_axis_off()
        if index < num_frames:
            axes.imshow(frames[index])
            axes.imshow(layers[index])
            if captions is not None:
                axes.set_title(captions[index], fontsize=9)
    ScalarMappable = require("matplotlib.cm", feature).ScalarMappable
    colorbar = figure.colorbar(ScalarMappable(cmap=COLORMAP), ax=grid, shrink=0.8)
    colorbar.set_label("share of the clip's maximum", fontsize=8)
    figure.suptitle(title, fontsize=10)
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png"))


def _rendered(figure: Any, canvas: Any) -> np.ndarray:
    """The figure as an `(H, W, 3)` uint8 image, cut to even sizes (H.264 in yuv420p needs them)."""
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3]
    return np.ascontiguousarray(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2])


def animate_explanation(
    frames: np.ndarray,
    maps: np.ndarray,
    path: str | os.PathLike,
    title: str = "",
    captions: Sequence[str] | None = None,
    fps: float = 2.0,
) -> None:
    """
    The frames with their maps overlaid as an animation: a `.gif` (Pillow) or an `.mp4` (H.264 with PyAV).

    Arguments as [`plot_explanation`]; `fps` frames are shown a second.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in ANIMATION_SUFFIXES:
        raise InputError(f"An animation is written as {' or '.join(ANIMATION_SUFFIXES)}, got {path}.")
    if fps <= 0:
        raise InputError(f"fps must be positive, got {fps}.")
    feature = "The explanation animation"
    layers = _overlays(maps, feature)
    height, width = layers.shape[1:3]
    # inches: the frame 4 wide, the title (two lines) above, the caption below, the colour bar on the right
    frame_size, top, bottom, left, right = (4.0, 4.0 * height / width), 0.6, 0.3, 0.1, 0.9
    size = (left + frame_size[0] + right, bottom + frame_size[1] + top)
    figure, canvas = new_figure(feature, size)
    axes = figure.add_axes(
        (left / size[0], bottom / size[1], frame_size[0] / size[0], frame_size[1] / size[1])
    )
    axes.set_axis_off()
    picture, overlay = axes.imshow(frames[0]), axes.imshow(layers[0])
    bar = figure.add_axes(
        ((left + frame_size[0] + 0.1) / size[0], bottom / size[1], 0.12 / size[0], frame_size[1] / size[1])
    )
    ScalarMappable = require("matplotlib.cm", feature).ScalarMappable
    colorbar = figure.colorbar(ScalarMappable(cmap=COLORMAP), cax=bar)
    colorbar.set_label("share of the clip's maximum", fontsize=7)
    colorbar.ax.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=9, y=1 - 0.08 / size[1], va="top")
    center = (left + frame_size[0] / 2) / size[0]
    caption = figure.text(center, 0.06 / size[1], "", ha="center", va="bottom", fontsize=9)
    images = []
    for index in range(len(layers)):
        picture.set_data(frames[index])
        overlay.set_data(layers[index])
        caption.set_text(captions[index] if captions is not None else "")
        images.append(_rendered(figure, canvas))
    if suffix == ".gif":
        from PIL import Image

        pictures = [Image.fromarray(image) for image in images]

        def write(temporary: Path) -> None:
            pictures[0].save(
                temporary,
                format="GIF",
                save_all=True,
                append_images=pictures[1:],
                duration=round(1000 / fps),
                loop=0,
            )

    else:
        from .synthetic import write_video

        def write(temporary: Path) -> None:
            write_video(temporary, np.stack(images), fps=fps)

    write_atomically(path, write)


def plot_timeline(
    windows: Sequence[Any],
    id2label: dict[int, str],
    path: str | os.PathLike,
    top_k: int = 5,
    title: str = "",
) -> None:
    """
    A PNG of the probabilities of a video's top classes over time: one line per class, one point per window.

    Args:
        windows: The video's `WindowOutput`s (`start`, `end` in seconds, `value`: the class probabilities).
        id2label: Class names.
        path: The PNG to write.
        top_k: Lines drawn: the classes most probable on average over the windows.
        title: Above the plot (e.g. the video's name).
    """
    feature = "The timeline plot"
    values = np.stack([window.value for window in windows])  # (windows, classes)
    middles = [(window.start + window.end) / 2 for window in windows]
    figure, _ = new_figure(feature, (8.0, 3.5), layout="constrained")
    axes = figure.add_subplot()
    for index in np.argsort(-values.mean(0), kind="stable")[:top_k]:
        axes.plot(middles, values[:, index], marker="o", markersize=3, label=id2label[int(index)])
    axes.set_xlim(0, windows[-1].end)
    axes.set_ylim(0, 1)
    axes.set_xlabel("time (s; each point is the middle of a window)")
    axes.set_ylabel("probability")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    axes.set_title(title, fontsize=10)
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png"))
