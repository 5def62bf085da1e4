"""A web app for a TimeSformer classifier: classify, explain and search a video in the browser, with Gradio.

[`VideoApp`] does the work (no Gradio needed): the model (and the index's) loaded once, each request a video file,
outputs that are JSON-friendly values and files. [`build_app`] puts it in a Gradio page whose endpoints have stable
names (`/classify`, `/explain`, `/search`) for `gradio_client` and scripts; [`launch_app`] serves it, queued (one
request at a time on the model). `pip install 'timesformer-hf[app]'`.

Example:

```python
>>> from timesformer_hf.web_app import launch_app
>>> launch_app("facebook/timesformer-base-finetuned-k400", index="videos-index", port=7860)  # doctest: +SKIP
```

From another process, with `gradio_client`:

```python
>>> from gradio_client import Client, handle_file
>>> client = Client("http://127.0.0.1:7860/")  # doctest: +SKIP
>>> labels, timeline, windows = client.predict(handle_file("video.mp4"), api_name="/classify")  # doctest: +SKIP
```
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .extras import require

__all__ = ["API_NAMES", "VideoApp", "build_app", "launch_app"]

logger = logging.getLogger(__name__)

API_NAMES = ("classify", "explain", "search")
PREVIEW_SHORT_SIDE, PREVIEW_FPS, PREVIEW_SECONDS = 240, 10.0, 10.0  # search results' previews
EXPLAIN_FPS = 2.0
EXPLAIN_METHODS = {"relevance": "Relevance for a class", "rollout": "Attention rollout (any class)"}


def _even(frames: np.ndarray) -> np.ndarray:
    """Frames cut to even sizes (H.264 in yuv420p needs them)."""
    return np.ascontiguousarray(frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2])


class VideoApp:
    """
    Classify, explain and search videos with one model, loaded once: what the web app's endpoints do.

    Args:
        model: Repo folder or Hub id of a TimeSformer classifier.
        index: A folder written by `timesformer-hf index`, for [`search`] (its own model embeds the queries).
        device, dtype: Where and how the models run (`"auto"`: the engine's defaults, bf16 on CPUs that have it).
        top_k: Labels shown per video.
        window: Seconds per window of a long video (longer than two windows): it is classified window by window,
            with a timeline.
        max_duration: Longer videos are refused (seconds).
        output_dir: Where pictures and videos are written (default: a temporary folder, removed by [`close`]).
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        index: str | os.PathLike | None = None,
        device: str = "auto",
        dtype: str = "auto",
        top_k: int = 5,
        window: float = 8.0,
        max_duration: float = 600.0,
        output_dir: str | os.PathLike | None = None,
    ) -> None:
        from .inference import load_model
        from .search import VideoIndex

        if top_k < 1:
            raise InputError(f"must be at least 1, got {top_k}.", argument="top_k")
        for name, value in (("window", window), ("max_duration", max_duration)):
            if not 0 < value < math.inf:
                raise InputError(f"must be a positive number of seconds, got {value}.", argument=name)
        require("matplotlib", "The app's pictures")
        self.index = (
            VideoIndex.load(index) if index is not None else None
        )  # a bad index fails before the model loads
        self.model, self.processor = load_model(model, device=device, dtype=dtype)
        self.feature_model = (
            self.index.load_feature_model(device=device, dtype=dtype) if self.index is not None else None
        )
        self.name, self.top_k, self.window, self.max_duration = str(model), top_k, window, max_duration
        self._own_output_dir = output_dir is None
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="timesformer-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)

    @property
    def labels(self) -> list[str]:
        """The model's class names, in class order."""
        id2label = self.model.config.id2label
        return [id2label[i] for i in range(len(id2label))]

    def close(self) -> None:
        """Remove the temporary output folder (not one given as `output_dir`)."""
        if self._own_output_dir:
            shutil.rmtree(self.output_dir, ignore_errors=True)

    def _new_file(self, suffix: str) -> Path:
        return self.output_dir / f"{uuid.uuid4().hex}{suffix}"

    def check_video(self, video: str | os.PathLike | None) -> Any:
        """The metadata of an uploaded video; one clear error if there is none, it is not a video, it cannot be
        decoded or it is longer than `max_duration`."""
        from .video import VideoDecodeError, probe_video

        if not video:
            raise InputError("No video: upload one (or pick an example) first.")
        try:
            metadata = probe_video(str(video))
        except VideoDecodeError as error:
            logger.warning(f"An upload that is not a video: {error}")
            raise InputError(
                f"{Path(video).name} is not a video that can be read: upload a video file (mp4, webm, mov, mkv, avi)."
            ) from None
        if metadata.duration > self.max_duration:
            raise InputError(
                f"{Path(video).name} lasts {metadata.duration:.0f} s, more than this app's limit of "
                f"{self.max_duration:.0f} s: upload a shorter video (or a part of it)."
            )
        return metadata

    def _predictions(self, value: np.ndarray) -> dict[str, float]:
        from .image_processing_timesformer import predictions_from_scores

        predicted = predictions_from_scores(value, self.model.config, top_k=self.top_k, threshold=0.0)
        if "predictions" in predicted:
            return {p["label"]: p["score"] for p in predicted["predictions"]}
        values = predicted.get("values", [predicted.get("value")])
        return {f"value {i}": float(v) for i, v in enumerate(values)}

    def classify(self, video: str | os.PathLike) -> dict[str, Any]:
        """The top-k labels of a video (`{"labels": {label: score}}`); a long one also gets `"windows"` (`start`,
        `end`, its top `label` and `score`) and `"timeline"`, a PNG of its top classes over time."""
        from .inference import InferenceEngine
        from .visualization import plot_timeline

        metadata = self.check_video(video)
        long = metadata.duration > 2 * self.window
        windows = {"window": self.window} if long else {}
        engine = InferenceEngine(self.model, self.processor, **windows)
        (result,) = list(engine.run([str(video)]))
        if result.error is not None:
            raise InputError(f"{Path(video).name} cannot be read: {result.error}")
        output: dict[str, Any] = {"labels": self._predictions(result.value), "windows": [], "timeline": None}
        if long:
            for window in result.windows:
                label, score = next(iter(self._predictions(window.value).items()))
                output["windows"].append(
                    {"start": window.start, "end": window.end, "label": label, "score": score}
                )
            output["timeline"] = str(self._new_file(".png"))
            plot_timeline(
                result.windows, self.model.config.id2label, output["timeline"], self.top_k, Path(video).name
            )
        return output

    def explain(
        self, video: str | os.PathLike, target: str | None = None, method: str = "relevance"
    ) -> dict[str, Any]:
        """Where the model looks for class `target` (default: the top one), or its attention rollout: `"video"`, an
        MP4 of the frames with the map overlaid and a colour bar; `"frames"`, a PNG strip of them; `"description"`
        and the top `"labels"`."""
        from .explain import explain_video
        from .visualization import animate_explanation, plot_explanation

        self.check_video(video)
        label2id = self.model.config.label2id
        if target and target not in label2id:
            raise InputError(f"{target!r} is not a class of this model: pick one of its labels.")
        target_id = label2id[target] if target and method == "relevance" else None
        explanation = explain_video(self.model, self.processor, str(video), method, target_id)
        title = f"{Path(video).name}: {explanation.description}\n{explanation.summary}"
        animation, strip = self._new_file(".mp4"), self._new_file(".png")
        shown = (explanation.frames, explanation.maps)
        animate_explanation(*shown, animation, title=title, captions=explanation.captions, fps=EXPLAIN_FPS)
        plot_explanation(*shown, strip, title=title, captions=explanation.captions)
        return {
            "video": str(animation),
            "frames": str(strip),
            "description": explanation.description,
            "labels": {p["label"]: p["score"] for p in explanation.predictions},
        }

    def search(
        self,
        video: str | os.PathLike,
        start: float | None = None,
        end: float | None = None,
        top_k: int = 6,
    ) -> list[dict[str, Any]]:
        """The indexed videos (or moments) most like `video`, or its part from `start` to `end` seconds, best first:
        `{"video", "start", "end", "score", "preview"}`, `preview` an MP4 of the result (of its moment)."""
        if self.index is None:
            raise InputError("This app has no index to search: start it with an index folder (`index=`).")
        if top_k < 1:
            raise InputError(f"must be at least 1, got {top_k}.", argument="top_k")
        self.check_video(video)
        span = None
        if start or end:
            span = (float(start or 0.0), float(end) if end else math.inf)
            if span[1] <= span[0]:
                raise InputError(f"The end ({span[1]:g} s) must come after the start ({span[0]:g} s).")
        model, processor = self.feature_model
        (result,) = list(self.index.query_engine(model, processor, span).run([str(video)]))
        if result.error is not None:
            raise InputError(f"{Path(video).name} cannot be read: {result.error}")
        hits = self.index.search_excluding(result.value, str(video), span, top_k=top_k)
        return [{**hit, "preview": self._preview(hit)} for hit in hits]

    def _preview(self, hit: dict[str, Any]) -> str | None:
        """A small MP4 of a result: its moment, or the first seconds of its video; None if it cannot be read."""
        from .synthetic import write_video
        from .video import VideoReader

        try:
            with VideoReader(hit["video"]) as reader:
                times = np.asarray(reader.timestamps)
                start = hit["start"] or 0.0
                end = min(hit["end"] if hit["end"] is not None else math.inf, start + PREVIEW_SECONDS)
                shown = np.flatnonzero((times >= start - 1e-6) & (times < end - 1e-6))
                if not len(shown):
                    shown = np.array([int(np.abs(times - start).argmin())])
                source_fps = reader.metadata.fps or PREVIEW_FPS
                step = max(1, round(source_fps / PREVIEW_FPS))  # every step-th frame, shown at its own pace
                frames = reader.read(shown[::step], max_short_side=PREVIEW_SHORT_SIDE)
        except Exception as error:  # a result whose file moved or broke still lists, without a preview
            logger.warning(f"No preview of {hit['video']}: {error}")
            return None
        path = self._new_file(".mp4")
        write_video(path, _even(frames), fps=source_fps / step)
        return str(path)


def _in_page(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` with its errors shown in the page as one message: the problem with the input as it is, anything
    else as "unexpected" (its traceback goes to the server's log, not to the user)."""
    import functools

    gradio = require("gradio", "The web app")

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except gradio.Error:
            raise
        except (InputError, FileNotFoundError) as error:
            raise gradio.Error(str(error)) from None
        except Exception as error:
            logger.exception("The app failed on a request")
            raise gradio.Error(
                f"Unexpected error ({type(error).__name__}: {error}); the server's log has the details."
            ) from None

    return wrapper


def build_app(app: VideoApp, examples: str | os.PathLike | None = None) -> Any:
    """The Gradio page of `app`: a video input (and examples from a folder) beside the Classify, Explain and (with
    an index) Search tabs, whose events are the API endpoints `/classify`, `/explain` and `/search`."""
    gr = require("gradio", "The web app")
    from .data.local import VIDEO_EXTENSIONS

    example_files = (
        sorted(str(path) for path in Path(examples).iterdir() if path.suffix.lower() in VIDEO_EXTENSIONS)
        if examples is not None
        else []
    )
    name = (
        Path(app.name).name if Path(app.name).is_dir() else app.name
    )  # a folder by its name, a Hub id whole
    with gr.Blocks(title=f"TimeSformer: {name}", delete_cache=(3600, 3600)) as page:
        gr.Markdown(
            f"# TimeSformer · {name}\nUpload a video, then classify it, see where the model looks, or search."
        )
        with gr.Row():
            with gr.Column(scale=2):
                video = gr.Video(label="Video", sources=["upload"], elem_id="video-input")
                if example_files:
                    gr.Examples(examples=[[path] for path in example_files], inputs=video, label="Examples")
            with gr.Column(scale=3):
                _classify_tab(gr, app, video)
                _explain_tab(gr, app, video)
                if app.index is not None:
                    _search_tab(gr, app, video)
    return page


def _classify_tab(gr: Any, app: VideoApp, video: Any) -> None:
    tracked = gr.Progress()  # a parameter defaulting to one gets Gradio's progress bar
    with gr.Tab("Classify"):
        button = gr.Button("Classify", variant="primary", elem_id="classify-button")
        labels = gr.Label(num_top_classes=app.top_k, label="Top labels", elem_id="labels")
        timeline = gr.Image(label="Timeline (long videos)", type="filepath")
        windows = gr.Dataframe(
            headers=["start (s)", "end (s)", "label", "score"],
            label="Windows (long videos)",
            interactive=False,
        )

        @_in_page
        def classify(path: str, progress: Any = tracked) -> tuple[Any, Any, Any]:
            progress(0.1, desc="Classifying")
            output = app.classify(path)
            rows = [[w["start"], w["end"], w["label"], round(w["score"], 4)] for w in output["windows"]]
            return output["labels"], output["timeline"], rows

        button.click(classify, video, [labels, timeline, windows], api_name="classify")


def _explain_tab(gr: Any, app: VideoApp, video: Any) -> None:
    tracked = gr.Progress()  # a parameter defaulting to one gets Gradio's progress bar
    with gr.Tab("Explain"):
        with gr.Row():
            target = gr.Dropdown([""] + app.labels, value="", label="Class (empty: the top prediction)")
            method = gr.Radio(
                [(text, key) for key, text in EXPLAIN_METHODS.items()], value="relevance", label="Method"
            )
        button = gr.Button("Explain", variant="primary", elem_id="explain-button")
        description = gr.Textbox(label="Explained", interactive=False)
        animation = gr.Video(
            label="Where the model looks", elem_id="explain-video", autoplay=True, loop=True, height=480
        )
        strip = gr.Image(label="The frames the model saw", type="filepath")

        @_in_page
        def explain(path: str, label: str, how: str, progress: Any = tracked) -> tuple[Any, Any, Any]:
            progress(0.1, desc="Explaining (one forward and one backward pass)")
            output = app.explain(path, label or None, how)
            return output["description"], output["video"], output["frames"]

        button.click(explain, [video, target, method], [description, animation, strip], api_name="explain")


def _search_tab(gr: Any, app: VideoApp, video: Any) -> None:
    tracked = gr.Progress()  # a parameter defaulting to one gets Gradio's progress bar
    with gr.Tab("Search"):
        with gr.Row():
            start = gr.Number(label="From (s; empty: the whole video)", value=None, minimum=0)
            end = gr.Number(label="To (s)", value=None, minimum=0)
            top_k = gr.Slider(1, 24, value=6, step=1, label="Results")
        button = gr.Button(
            f"Search {len(app.index)} indexed rows", variant="primary", elem_id="search-button"
        )
        gallery = gr.Gallery(label="Most alike", columns=3, elem_id="search-results")
        found = gr.JSON(label="Results")

        @_in_page
        def search(
            path: str, since: float | None, until: float | None, count: float, progress: Any = tracked
        ) -> tuple[Any, Any]:
            progress(0.1, desc="Searching")
            hits = app.search(path, since, until, int(count))
            items = [(hit["preview"], _caption(hit)) for hit in hits if hit["preview"] is not None]
            return items, [{key: hit[key] for key in ("video", "start", "end", "score")} for hit in hits]

        button.click(search, [video, start, end, top_k], [gallery, found], api_name="search")


def _caption(hit: dict[str, Any]) -> str:
    moment = "" if hit["start"] is None else f" · {hit['start']:.1f}-{hit['end']:.1f} s"
    return f"{hit['score']:.3f} · {Path(hit['video']).name}{moment}"


def launch_app(
    model: str | os.PathLike,
    *,
    index: str | os.PathLike | None = None,
    examples: str | os.PathLike | None = None,
    host: str | None = None,
    port: int | None = None,
    share: bool = False,
    max_file_size: str = "500mb",
    **settings: Any,
) -> None:
    """Load `model` (and `index`) once and serve the app until interrupted; requests are queued, one at a time on
    the model. `host` and `port` default to `GRADIO_SERVER_NAME` and `GRADIO_SERVER_PORT` (as a Space sets them),
    else 127.0.0.1 and the first free port from 7860. `settings`: [`VideoApp`]'s (`device`, `dtype`, `top_k`,
    `window`, `max_duration`)."""
    app = VideoApp(model, index=index, **settings)
    try:
        page = build_app(app, examples)
        page.queue(default_concurrency_limit=1)
        allowed = [str(app.output_dir)] + ([str(Path(examples).resolve())] if examples is not None else [])
        page.launch(
            server_name=host,
            server_port=port,
            share=share,
            allowed_paths=allowed,
            max_file_size=max_file_size,
            show_error=True,
        )
    finally:
        app.close()
