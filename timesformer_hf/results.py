"""Result files of long jobs: written in parts as results come, resumed after a crash, merged when complete.

[`ResultStore`] keeps the outputs of `classify`, `features` and `evaluate` in a hidden folder beside the output
(`.NAME.parts/`): every few videos, one more Parquet part, each written atomically, so a job killed at any point
loses at most the videos since its last part and never leaves a corrupt file. Running the same command again skips
the videos already in parts; when every video is done, the parts are merged, in input order, into the one output
(written atomically), with a small report beside it (`NAME.report.json`: settings, videos, failures). Several
processes (`accelerate launch`) each write their own parts into the same folder; the main process merges them.

Example:

```python
>>> store = ResultStore("features.parquet", settings={"model": "repo", "pool": "cls"})  # doctest: +SKIP
>>> store.check()  # refuses to overwrite an output or mix settings  # doctest: +SKIP
>>> store.prepare()  # doctest: +SKIP
>>> for result in engine.run(videos, indices=store.pending(range(len(videos)))):  # doctest: +SKIP
...     store.add(result)
>>> store.close()  # doctest: +SKIP
>>> store.finish(videos, write_features)  # doctest: +SKIP
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
            ("duration", pa.float64()),
            ("value", pa.list_(pa.float32())),
            ("window_start", pa.list_(pa.float64())),
            ("window_end", pa.list_(pa.float64())),
            ("window_value", pa.list_(pa.list_(pa.float32()))),
            ("error", pa.string()),
        ]
    )


def _to_row(result: VideoOutput) -> dict[str, Any]:
    windows = result.windows
    return {
        "index": result.index,
        "video": result.video,
        "duration": result.duration,
        "value": None if result.value is None else result.value.tolist(),
        "window_start": None if windows is None else [window.start for window in windows],
        "window_end": None if windows is None else [window.end for window in windows],
        "window_value": None if windows is None else [window.value.tolist() for window in windows],
        "error": result.error,
    }


def _from_row(row: dict[str, Any]) -> VideoOutput:
    windows = None
    if row["window_start"] is not None:
        windows = [
            WindowOutput(start, end, np.asarray(value, dtype=np.float32))
            for start, end, value in zip(
                row["window_start"], row["window_end"], row["window_value"], strict=True
            )
        ]
    value = None if row["value"] is None else np.asarray(row["value"], dtype=np.float32)
    return VideoOutput(row["index"], row["video"], value, row["duration"], windows, row["error"])


class ResultStore:
    """The parts, the report and the merged output of one job (see the module docstring).

    Args:
        output: The final output file.
        settings: What determines the results (model, pooling, clips, windows, dtype...): a re-run with other
            settings is refused instead of mixing results.
        rank: This process's number; every process writes its own parts.
        overwrite: Start over, replacing an existing output and any unfinished parts.
        flush_every: Write a part after this many videos...
        flush_seconds: ...or after this many seconds with results waiting.
    """

    def __init__(
        self,
        output: str | os.PathLike,
        settings: dict[str, Any],
        *,
        rank: int = 0,
        overwrite: bool = False,
        flush_every: int = 64,
        flush_seconds: float = 30.0,
    ) -> None:
        self.output = Path(output)
        self.parts = self.output.parent / f".{self.output.name}.parts"
        self.report = self.output.with_suffix(".report.json")
        self.settings = json.loads(json.dumps(settings))  # as it reads back from JSON
        self.rank = rank
        self.overwrite = overwrite
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    def is_complete(self, videos: Sequence[str]) -> bool:
        """Whether the output exists and its report lists exactly these videos with these settings."""
        if self.overwrite or not (self.output.exists() and self.report.is_file()):
            return False
        report = json.loads(self.report.read_text())
        return report.get("settings") == self.settings and report.get("videos") == list(videos)

    def check(self) -> None:
        """Refuse to replace an output or to mix settings with an unfinished run (read-only: every process)."""
        if self.overwrite:
            return
        if self.output.exists():
            raise FileExistsError(
                f"{self.output} already exists (written for other videos or settings): pass --overwrite to replace "
                "it, or choose another --output."
            )
        manifest = self.parts / "settings.json"
        if manifest.is_file() and json.loads(manifest.read_text()) != self.settings:
            raise FileExistsError(
                f"{self.parts} holds an unfinished run with other settings ({manifest.read_text().strip()}): run "
                "that command again to finish it, or pass --overwrite to start over."
            )

    def prepare(self) -> None:
        """Set up the parts folder after [`check`] (main process only); `overwrite` clears unfinished parts."""
        if self.overwrite:
            shutil.rmtree(self.parts, ignore_errors=True)
        self.parts.mkdir(parents=True, exist_ok=True)
        write_atomically(
            self.parts / "settings.json", lambda path: path.write_text(json.dumps(self.settings))
        )

    def _part_rows(self) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        rows = []
        for part in sorted(self.parts.glob("part-*.parquet")):
            rows += pq.read_table(part).to_pylist()
        return rows

    def pending(self, indices: Iterable[int]) -> list[int]:
        """The `indices` whose videos are not in any part yet (failed videos are tried again)."""
        done = {row["index"] for row in self._part_rows() if row["error"] is None}
        return [index for index in indices if index not in done]

    def add(self, result: VideoOutput) -> None:
        """Keep a result; write a part when enough are waiting."""
        self._buffer.append(_to_row(result))
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

    close = flush

    def finish(
        self, videos: Sequence[str], write: Callable[[Path, list[VideoOutput]], object]
    ) -> list[VideoOutput]:
        """Merge the parts (main process, after every process closed its store): `write(path, results)` writes the
        output atomically, in input order, without failed videos; then the report; then the parts go. Returns all
        results, failed ones included."""
        latest: dict[int, dict[str, Any]] = {}
        for row in self._part_rows():  # a retried video's success replaces its earlier failure
            if row["index"] not in latest or row["error"] is None:
                latest[row["index"]] = row
        results = [_from_row(latest[index]) for index in sorted(latest)]
        write_atomically(self.output, lambda path: write(path, [r for r in results if r.error is None]))
        failed = [{"video": r.video, "error": r.error} for r in results if r.error is not None]
        report = {
            "settings": self.settings,
            "videos": list(videos),
            "completed": len(results) - len(failed),
            "failed": failed,
        }
        write_atomically(self.report, lambda path: path.write_text(json.dumps(report, indent=2)))
        shutil.rmtree(self.parts, ignore_errors=True)
        return results


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
        raise ValueError("No video could be read: nothing to write.")
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
        raise ValueError(f"Features are written as {', '.join(FEATURE_SUFFIXES)}, not {suffix!r}.")


def feature_index(results: Sequence[VideoOutput]) -> list[dict[str, Any]]:
    """The `.json` written beside a `.npy` of features: `{"video", "start", "end"}` per row."""
    return [{"video": video, "start": start, "end": end} for video, start, end, _ in feature_rows(results)]


def prediction_records(
    results: Sequence[VideoOutput], top_k: Callable[[np.ndarray], list[dict]]
) -> list[dict]:
    """`{"video", "predictions": [{"label", "score"}], "windows": [{"start", "end", "predictions"}]}` per video
    (`windows` only for windowed results)."""
    records = []
    for result in results:
        record: dict[str, Any] = {"video": result.video, "predictions": top_k(result.value)}
        if result.windows is not None:
            record["windows"] = [
                {"start": window.start, "end": window.end, "predictions": top_k(window.value)}
                for window in result.windows
            ]
        records.append(record)
    return records


def write_predictions(path: Path, records: Sequence[dict], suffix: str) -> None:
    """Prediction records as JSON Lines, Parquet (nested as in JSON) or CSV (one row per video or window and rank:
    `video`, `scope` (`video` or `window`), `start`, `end`, `rank`, `label`, `score`)."""
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(list(records)), path)
    elif suffix == ".csv":
        import csv

        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["video", "scope", "start", "end", "rank", "label", "score"])
            for record in records:
                scopes = [("video", "", "", record["predictions"])]
                scopes += [
                    ("window", w["start"], w["end"], w["predictions"]) for w in record.get("windows", [])
                ]
                for scope, start, end, predictions in scopes:
                    for rank, prediction in enumerate(predictions, 1):
                        writer.writerow(
                            [
                                record["video"],
                                scope,
                                start,
                                end,
                                rank,
                                prediction["label"],
                                prediction["score"],
                            ]
                        )
    else:
        raise ValueError(f"Predictions are written as {', '.join(PREDICTION_SUFFIXES)}, not {suffix!r}.")
