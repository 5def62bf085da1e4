"""Result files of long jobs: written in parts as results come, resumed after a crash, merged when complete.

[`ResultStore`] keeps the outputs of `classify`, `features` and `evaluate` in a hidden folder beside the output
(`.NAME.parts/`): every few videos, one more Parquet part, each written atomically, so a job killed at any point
loses at most the videos since its last part and never leaves a corrupt file. Running the same command again skips
the videos already in parts; when every video is done, the parts are merged, in input order, into the one output
(written atomically), with a small report beside it (`NAME.report.json`, e.g. `features.parquet.report.json`: settings, videos, failures). Several
processes (`accelerate launch`) each write their own parts into the same folder; the main process merges them.

Example:

```python
>>> store = ResultStore("features.parquet", videos, settings={"model": "repo", "pool": "cls"})  # doctest: +SKIP
>>> store.check()  # refuses to overwrite an output or mix settings  # doctest: +SKIP
>>> store.prepare()  # doctest: +SKIP
>>> for result in engine.run(videos, indices=store.pending(range(len(videos)))):  # doctest: +SKIP
...     store.add(result)
>>> store.flush()  # doctest: +SKIP
>>> store.finish(write)  # doctest: +SKIP
```
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .files import write_atomically
from .inference import VideoOutput, WindowOutput

__all__ = [
    "ResultStore",
    "FEATURE_SUFFIXES",
    "PREDICTION_SUFFIXES",
    "feature_rows",
    "write_features",
    "write_predictions",
]

FEATURE_SUFFIXES = (".parquet", ".npy", ".safetensors")
PREDICTION_SUFFIXES = (".jsonl", ".csv", ".parquet")


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),
            ("video", pa.string()),
            ("fingerprint", pa.string()),
            ("duration", pa.float64()),
            ("value", pa.list_(pa.float32())),
            ("window_start", pa.list_(pa.float64())),
            ("window_end", pa.list_(pa.float64())),
            ("window_value", pa.list_(pa.list_(pa.float32()))),
            ("error", pa.string()),
        ]
    )


def _to_row(result: VideoOutput, fingerprint: str | None) -> dict[str, Any]:
    windows = result.windows
    return {
        "index": result.index,
        "video": result.video,
        "fingerprint": fingerprint,
        "duration": result.duration,
        "value": None if result.value is None else result.value.tolist(),
        "window_start": None if windows is None else [window.start for window in windows],
        "window_end": None if windows is None else [window.end for window in windows],
        "window_value": None if windows is None else [window.value.tolist() for window in windows],
        "error": result.error,
    }


def _vectors(column: Any) -> list[np.ndarray | None]:
    """A (chunked) Arrow list-of-floats column as float32 NumPy vectors, `None` for nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    counts = pc.fill_null(pc.list_value_length(column), 0).to_numpy()
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    pieces = np.split(flat, np.cumsum(counts)[:-1]) if len(counts) else []
    validity = column.is_valid().to_numpy(zero_copy_only=False)
    return [piece if valid else None for piece, valid in zip(pieces, validity, strict=True)]


def _from_table(table: Any) -> list[tuple[VideoOutput, str | None]]:
    """Part rows back into results and their videos' fingerprints, the vectors column by column (no Python object
    per number)."""
    import pyarrow as pa

    values = _vectors(table.column("value"))
    window_values = pa.chunked_array(
        table.column("window_value").chunks, type=table.schema.field("window_value").type
    )
    window_values = (
        window_values.combine_chunks() if window_values.num_chunks else pa.array([], window_values.type)
    )
    windows_of_all = iter(_vectors(window_values.flatten()))
    results = []
    columns = ["index", "video", "fingerprint", "duration", "window_start", "window_end", "error"]
    for row, value in zip(table.select(columns).to_pylist(), values, strict=True):
        windows = None
        if row["window_start"] is not None:
            windows = [
                WindowOutput(start, end, next(windows_of_all))
                for start, end in zip(row["window_start"], row["window_end"], strict=True)
            ]
        result = VideoOutput(row["index"], row["video"], value, row["duration"], windows, row["error"])
        results.append((result, row["fingerprint"]))
    return results


class ResultStore:
    """The parts, the report and the merged output of one job (see the module docstring).

    Args:
        output: The final output file.
        videos: The names of the job's videos, in order: a result counts for position `i` only if it is of
            `videos[i]`, so a resumed job whose video list changed redoes what moved.
        settings: What determines the results (model and its `model_fingerprint`, pooling, clips, windows,
            dtype...): a re-run with other settings is refused instead of mixing results.
        fingerprints: What identifies each video's content (e.g. `files.file_fingerprint`): a result counts only
            for the same content, so a resumed job redoes the videos that changed since.
        rank: This process's number; every process writes its own parts.
        overwrite: Start over, replacing an existing output and any unfinished parts.
        flush_every: Write a part after this many videos...
        flush_seconds: ...or after this many seconds with results waiting.
    """

    def __init__(
        self,
        output: str | os.PathLike,
        videos: Sequence[str],
        settings: dict[str, Any],
        *,
        fingerprints: Sequence[str] | None = None,
        rank: int = 0,
        overwrite: bool = False,
        flush_every: int = 64,
        flush_seconds: float = 30.0,
    ) -> None:
        self.output = Path(output)
        self.parts = self.output.parent / f".{self.output.name}.parts"
        self.report = self.output.parent / f"{self.output.name}.report.json"
        self.videos = list(videos)
        self.fingerprints = list(fingerprints) if fingerprints is not None else [None] * len(self.videos)
        self.settings = json.loads(json.dumps(settings))  # as it reads back from JSON
        self.rank = rank
        self.overwrite = overwrite
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    def _written_report(self) -> dict[str, Any] | None:
        if not (self.output.exists() and self.report.is_file()):
            return None
        return json.loads(self.report.read_text())

    def is_complete(self) -> bool:
        """Whether the output exists and its report lists exactly these videos, unchanged, with these settings."""
        report = None if self.overwrite else self._written_report()
        return (
            report is not None
            and report.get("settings") == self.settings
            and report.get("videos") == self.videos
            and report.get("fingerprints", self.fingerprints) == self.fingerprints
        )

    def _unfinished_settings(self) -> dict[str, Any] | None:
        manifest = self.parts / "settings.json"
        return json.loads(manifest.read_text()) if manifest.is_file() else None

    def check(self) -> None:
        """Refuse to replace an output or to mix settings with an unfinished run (read-only: every process).

        An output beside unfinished parts of the same settings is one whose merge was interrupted: it is redone.
        """
        if self.output.is_dir():
            raise InputError(
                f"{self.output} is a folder: name the file to write, e.g. {self.output / self.output.name}.",
                argument="output",
            )
        if self.overwrite:
            return
        unfinished = self._unfinished_settings()
        if unfinished is not None and unfinished != self.settings:
            if _model_changed(unfinished, self.settings):
                raise FileExistsError(
                    f"The model {self.settings.get('model')} changed since this job started: {self.parts} holds "
                    "results of other weights. Pass `overwrite=True` to start over with the new weights (or restore the "
                    "model to finish the job)."
                )
            raise FileExistsError(
                f"{self.parts} holds an unfinished run with other settings ({json.dumps(unfinished)}): run that "
                "command again to finish it, or pass `overwrite=True` to start over."
            )
        if self.output.exists() and unfinished is None:
            report = self._written_report() or {}
            if _model_changed(report.get("settings") or {}, self.settings):
                reason = "by other weights of the model"
            elif report.get("settings") == self.settings and report.get("videos") == self.videos:
                reason = "before some of its videos changed"
            else:
                reason = "for other videos or settings"
            raise FileExistsError(
                f"{self.output} already exists (written {reason}): pass `overwrite=True` to replace it, or choose "
                "another `output=`."
            )

    def prepare(self) -> None:
        """Set up the parts folder after [`check`] (main process only). With `overwrite`, the old output, report
        and parts go first, so that an interrupted overwriting run resumes like any other."""
        if self.overwrite:
            shutil.rmtree(self.parts, ignore_errors=True)
            self.output.unlink(missing_ok=True)
            self.report.unlink(missing_ok=True)
        self.parts.mkdir(parents=True, exist_ok=True)
        for leftover in self.parts.glob(".*"):  # temporary files of parts an interrupted run was writing
            leftover.unlink(missing_ok=True)
        write_atomically(
            self.parts / "settings.json", lambda path: path.write_text(json.dumps(self.settings))
        )

    def _read_parts(self, columns: list[str] | None = None) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _schema() if columns is None else pa.schema([_schema().field(name) for name in columns])
        tables = [pq.read_table(part, columns=columns) for part in sorted(self.parts.glob("part-*.parquet"))]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def _valid(self, index: int, video: str, fingerprint: str | None) -> bool:
        """Whether a stored result is of the video now at `index`, with the same content."""
        return (
            index < len(self.videos)
            and self.videos[index] == video
            and self.fingerprints[index] == fingerprint
        )

    def pending(self, indices: Iterable[int]) -> list[int]:
        """The `indices` whose videos are not in any part yet, or changed since (failed videos are tried again)."""
        table = self._read_parts(["index", "video", "fingerprint", "error"]).to_pydict()
        rows = zip(table["index"], table["video"], table["fingerprint"], table["error"], strict=True)
        done = {
            index
            for index, video, fingerprint, error in rows
            if error is None and self._valid(index, video, fingerprint)
        }
        return [index for index in indices if index not in done]

    def add(self, result: VideoOutput) -> None:
        """Keep a result; write a part when enough are waiting."""
        self._buffer.append(_to_row(result, self.fingerprints[result.index]))
        if len(self._buffer) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the waiting results as one part (atomically)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        name = f"part-{self.rank:05d}-{time.time_ns():020d}.parquet"
        table = pa.Table.from_pylist(self._buffer, schema=_schema())
        write_atomically(self.parts / name, lambda path: pq.write_table(table, path))
        self._buffer = []

    def finish(self, write: Callable[[Path, list[VideoOutput]], object]) -> list[VideoOutput]:
        """Merge the parts (main process, after every process flushed its store) and return every video's result,
        failed ones included, in input order.

        The report is written first, then `write(path, results)` writes the output atomically (in input order,
        without failed videos), then the parts go: a job stopped anywhere in between finishes on its next run.

        Raises:
            RuntimeError: If a video has no result (a process did not flush its parts); the parts are kept.
            ValueError: If no video could be read (the report lists why); nothing is written but the report.
        """
        latest: dict[int, VideoOutput] = {}
        for result, fingerprint in _from_table(self._read_parts()):
            # a retried video's success replaces its earlier failure
            if self._valid(result.index, result.video, fingerprint) and (
                result.index not in latest or result.error is None
            ):
                latest[result.index] = result
        missing = [video for index, video in enumerate(self.videos) if index not in latest]
        if missing:
            raise RuntimeError(
                f"No result for {len(missing)} videos (e.g. {missing[0]}): run the command again."
            )
        results = [latest[index] for index in range(len(self.videos))]
        failed = [{"video": r.video, "error": r.error} for r in results if r.error is not None]
        report = {
            "settings": self.settings,
            "videos": self.videos,
            "fingerprints": self.fingerprints,
            "completed": len(results) - len(failed),
            "failed": failed,
        }
        write_atomically(self.report, lambda path: path.write_text(json.dumps(report, indent=2)))
        if len(failed) == len(results):
            raise InputError(f"None of the {len(results)} videos could be read: see {self.report}.")
        write_atomically(self.output, lambda path: write(path, [r for r in results if r.error is None]))
        shutil.rmtree(self.parts, ignore_errors=True)
        return results


def _true_labels(record: dict[str, Any]) -> tuple[str, set[str]]:
    """The true label(s) of an `evaluate` record, as the CSV writes them (`a|b` for several) and as a set."""
    labels = record["label"] if isinstance(record["label"], list) else [record["label"]]
    return "|".join(map(str, labels)), set(map(str, labels))


def _model_changed(before: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether two job settings name the same model but other weights (`model_fingerprint`)."""
    return (
        before.get("model") == now.get("model")
        and "model_fingerprint" in before
        and before.get("model_fingerprint") != now.get("model_fingerprint")
    )


def feature_rows(results: Sequence[VideoOutput]) -> list[tuple[str, float, float, np.ndarray]]:
    """`(video, start, end, feature)` per video, or per window for windowed results."""
    rows = []
    for result in results:
        if result.windows is None:
            rows.append((result.video, 0.0, result.duration, result.value))
        else:
            rows += [(result.video, window.start, window.end, window.value) for window in result.windows]
    return rows


def write_features(path: Path, results: Sequence[VideoOutput], suffix: str) -> None:
    """Features as Parquet (`video`, `start`, `end`, `feature`: a fixed-size float32 list), `.npy` (with the rows'
    `video`/`start`/`end` in a `.json` beside it) or `.safetensors` (`features`, `start`, `end`; videos in the
    metadata)."""
    rows = feature_rows(results)
    if not rows:
        raise InputError("No video could be read: nothing to write.")
    videos = [video for video, *_ in rows]
    starts = np.array([start for _, start, _, _ in rows], dtype=np.float64)
    ends = np.array([end for _, _, end, _ in rows], dtype=np.float64)
    features = np.stack([feature for *_, feature in rows]).astype(np.float32)
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        column = pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), features.shape[1])
        table = pa.table({"video": videos, "start": starts, "end": ends, "feature": column})
        pq.write_table(table, path)
    elif suffix == ".npy":
        with open(path, "wb") as file:
            np.save(file, features)
    elif suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(
            {"features": features, "start": starts, "end": ends},
            str(path),
            metadata={"videos": json.dumps(videos)},
        )
    else:
        raise InputError(f"Features are written as {', '.join(FEATURE_SUFFIXES)}, not {suffix!r}.")


def feature_index(results: Sequence[VideoOutput]) -> list[dict[str, Any]]:
    """The `.json` written beside a `.npy` of features: `{"video", "start", "end"}` per row."""
    return [{"video": video, "start": start, "end": end} for video, start, end, _ in feature_rows(results)]


def prediction_records(results: Sequence[VideoOutput], predict: Callable[[np.ndarray], dict]) -> list[dict]:
    """`{"video", **predict(scores), "windows": [{"start", "end", **predict(scores)}]}` per video (`windows` only for
    windowed results), `predict` giving `{"predictions": [{"label", "score"}]}` or, for a regression model,
    `{"value": ...}` (see [`~timesformer_hf.image_processing_timesformer.predictions_from_scores`])."""
    records = []
    for result in results:
        record: dict[str, Any] = {"video": result.video, **predict(result.value)}
        if result.windows is not None:
            record["windows"] = [
                {"start": window.start, "end": window.end, **predict(window.value)}
                for window in result.windows
            ]
        records.append(record)
    return records


def write_predictions(path: Path, records: Sequence[dict], suffix: str) -> None:
    """Prediction records as JSON Lines, Parquet (nested as in JSON) or CSV (one row per video or window and rank:
    `video`, `scope` (`video` or `window`), `start`, `end`, `rank`, `label`, `score`; for a regression model one row
    per video or window, `value` in place of `rank`, `label` and `score`). Records of `evaluate` carry the true
    `label`: the CSV then has `true_label` and, for a classifier, `correct` on each row: whether that row's label is
    the video's true label (one of them, for a multi-label model), so that the rank-1 rows' give the top-1
    accuracy."""
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(list(records)), path)
    elif suffix == ".csv":
        import csv

        regression = bool(records) and "predictions" not in records[0]
        labelled = bool(records) and "label" in records[0]
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            columns = ["value"] if regression else ["rank", "label", "score"]
            writer.writerow(
                ["video", "scope", "start", "end", *columns, *(["true_label", "correct"] * labelled)]
            )
            for record in records:
                true_text, true_set = _true_labels(record) if labelled else ("", set())
                scopes = [("video", "", "", record)]
                scopes += [("window", w["start"], w["end"], w) for w in record.get("windows", [])]
                for scope, start, end, result in scopes:
                    head = [record["video"], scope, start, end]
                    if regression:
                        value = result.get("value", result.get("values"))
                        writer.writerow([*head, value, *([true_text, ""] if labelled else [])])
                        continue
                    for rank, prediction in enumerate(result["predictions"], 1):
                        truth = [true_text, str(prediction["label"]) in true_set] if labelled else []
                        writer.writerow([*head, rank, prediction["label"], prediction["score"], *truth])
    else:
        raise InputError(f"Predictions are written as {', '.join(PREDICTION_SUFFIXES)}, not {suffix!r}.")
