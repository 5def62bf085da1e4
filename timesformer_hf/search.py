"""Search a collection of videos (or moments of long ones) by example: a FAISS index over video features.

A [`VideoIndex`] holds one L2-normalised feature per row (a video, or a window of one: `video`, `start`, `end`),
so that inner products are cosine similarities. Up to `exact_limit` rows it searches exhaustively (`IndexFlatIP`);
above, with an HNSW graph (`IndexHNSWFlat`), whose recall@10 against exhaustive search is measured when it is built
([`VideoIndex.recall_at_10`]). A saved index is a folder: `index.json` (the model and its fingerprint, the kind of
index, its recall), `rows.parquet` (the rows and their features) and `index.faiss`.

Example:

```python
>>> import numpy as np
>>> from timesformer_hf.search import VideoIndex
>>> rows = [{"video": name, "start": None, "end": None} for name in ("a.mp4", "b.mp4", "c.mp4")]
>>> index = VideoIndex(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), rows)
>>> [(hit["video"], round(hit["score"], 2)) for hit in index.search(np.array([1.0, 0.1]), top_k=2)[0]]
[('a.mp4', 1.0), ('b.mp4', 0.68)]

```
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .extras import require
from .files import check_output_dir, make_staging_dir, replace_dir

__all__ = ["EXACT_LIMIT", "META_FILE", "VideoIndex"]

INDEX_FILE, ROWS_FILE, META_FILE = "index.faiss", "rows.parquet", "index.json"
# Up to this many rows an exhaustive search is fast enough (1M x 768 floats are 3 GB and ~0.3 s a query on a CPU).
EXACT_LIMIT = 100_000
HNSW_NEIGHBOURS, HNSW_SEARCH_DEPTH = 32, 128
# Features go into FAISS, are checked and written this many rows at a time: they are held once, inside FAISS.
CHUNK_ROWS = 65_536


def _normalised(features: np.ndarray) -> np.ndarray:
    features = np.ascontiguousarray(np.atleast_2d(np.asarray(features, dtype=np.float32)))
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _chunks(count: int) -> range:
    return range(0, count, CHUNK_ROWS)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """`{"video", "start", "end"}` of a row (`start`, `end`: seconds of a window, else None)."""
    return {"video": str(row["video"]), "start": row.get("start"), "end": row.get("end")}


def _key(row: dict[str, Any]) -> tuple[str, float | None, float | None]:
    return str(row["video"]), row.get("start"), row.get("end")


def _overlaps(row: dict[str, Any], video: str, span: tuple[float, float] | None) -> bool:
    """Whether a row is (part of) a query from `video`: that video, or with a span, a moment of it that overlaps."""
    if row["video"] != video:
        return False
    if span is None or row["start"] is None:
        return True
    return row["start"] < span[1] and row["end"] > span[0]


class VideoIndex:
    """Features of videos (or windows) and a FAISS index over them, searched by cosine similarity.

    Args:
        features: `(rows, dim)` features (e.g. `timesformer-hf features` output); normalised into the FAISS index,
            which alone holds them (None with `index`).
        rows: One `{"video", "start", "end"}` per feature (`start`/`end` in seconds for a window, else None).
        model: The model the features come from, and its fingerprint (`loading.model_fingerprint`): an index is
            queried with features of the same weights only.
        exact_limit: Above this many rows, an approximate (HNSW) index.
        settings: How the features were computed (pool, windows, ...), so that queries are computed the same way.
        index: A FAISS index already built over these features (as [`load`] reads it).
    """

    def __init__(
        self,
        features: np.ndarray | None,
        rows: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        model_fingerprint: str | None = None,
        exact_limit: int = EXACT_LIMIT,
        settings: dict[str, Any] | None = None,
        index: Any = None,
    ) -> None:
        if not len(rows):
            raise InputError("An index needs at least one video's features.")
        count = index.ntotal if features is None else len(features)
        if count != len(rows):
            raise InputError(f"{count} features for {len(rows)} rows: give one feature per row.")
        self.rows = [_row(row) for row in rows]
        self.model, self.model_fingerprint, self.exact_limit = model, model_fingerprint, exact_limit
        self.settings = dict(settings or {})
        self._faiss = require("faiss", "Video search")
        self._index = index if index is not None else self._build(features)

    @property
    def approximate(self) -> bool:
        """Whether the index is an HNSW graph (more than `exact_limit` rows) rather than exhaustive."""
        return len(self.rows) > self.exact_limit

    @property
    def dim(self) -> int:
        """The features' size."""
        return self._index.d

    @property
    def features(self) -> np.ndarray:
        """`(rows, dim)` the normalised features, read back from the FAISS index (a copy: for a few rows, use
        [`vectors`])."""
        return self.vectors(range(len(self.rows)))

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """`(len(rows), dim)` the normalised features of `rows`, read back from the FAISS index."""
        rows = [int(row) for row in rows]
        if not rows:
            return np.empty((0, self.dim), dtype=np.float32)
        if rows == list(range(rows[0], rows[0] + len(rows))):  # a run of rows, at once
            return self._index.reconstruct_n(rows[0], len(rows))
        return np.stack([self._index.reconstruct(row) for row in rows])

    def _new_index(self, dim: int, approximate: bool) -> Any:
        if approximate:
            index = self._faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, self._faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = HNSW_SEARCH_DEPTH
            return index
        return self._faiss.IndexFlatIP(dim)

    def _build(self, features: np.ndarray) -> Any:
        """A FAISS index of `features`, normalised a chunk at a time: they are held once, inside it."""
        index = self._new_index(np.shape(features)[1], self.approximate)
        for start in _chunks(len(features)):
            index.add(_normalised(features[start : start + CHUNK_ROWS]))
        return index

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, features: np.ndarray, rows: Sequence[dict[str, Any]]) -> int:
        """Add the rows not in the index yet (by video, start and end); return how many were added. An exhaustive
        index that grows past `exact_limit` rows becomes an HNSW graph."""
        known = {_key(row) for row in self.rows}
        new = [i for i, row in enumerate(rows) if _key(row) not in known]
        if not new:
            return 0
        if np.shape(features)[1] != self.dim:
            raise InputError(
                f"Features of size {np.shape(features)[1]} cannot join an index of size {self.dim}: index them with "
                "the index's model."
            )
        was_approximate = self.approximate
        self.rows += [_row(rows[i]) for i in new]
        if self.approximate and not was_approximate:  # rebuilt as a graph, from the features it holds
            index = self._new_index(self.dim, approximate=True)
            for start in _chunks(len(self.rows) - len(new)):
                index.add(
                    self._index.reconstruct_n(start, min(CHUNK_ROWS, len(self.rows) - len(new) - start))
                )
            self._index = index
        new = np.asarray(new)
        for start in _chunks(len(new)):
            self._index.add(_normalised(np.asarray(features)[new[start : start + CHUNK_ROWS]]))
        return len(new)

    def search(self, queries: np.ndarray, top_k: int = 10) -> list[list[dict[str, Any]]]:
        """The `top_k` rows nearest each query (`(dim,)` or `(queries, dim)`), best first: `{"video", "start",
        "end", "score"}` with the cosine similarity as `score`."""
        if top_k < 1:
            raise InputError(f"must be at least 1, got {top_k}.", argument="top_k")
        queries = _normalised(queries)
        if queries.shape[1] != self.dim:
            raise InputError(
                f"A query of size {queries.shape[1]} for an index of size {self.dim}: compute it with the index's "
                "model."
            )
        scores, found = self._index.search(queries, min(top_k, len(self.rows)))
        return [
            [
                {**self.rows[i], "score": float(score)}
                for score, i in zip(row_scores, row_ids, strict=True)
                if i >= 0
            ]
            for row_scores, row_ids in zip(scores, found, strict=True)
        ]

    def rows_of(self, video: str) -> list[int]:
        """The rows of the indexed video `video` (its path as indexed, or a file name only it has); [] if none."""
        rows = [i for i, row in enumerate(self.rows) if row["video"] == video]
        if rows:
            return rows
        named = {row["video"] for row in self.rows if Path(row["video"]).name == video}
        if len(named) > 1:
            raise InputError(
                f"Several videos of the index are named {video}: give one's path, e.g. {sorted(named)[0]}."
            )
        return [i for i, row in enumerate(self.rows) if row["video"] in named]

    def search_excluding(
        self, query: np.ndarray, video: str, span: tuple[float, float] | None = None, top_k: int = 10
    ) -> list[dict[str, Any]]:
        """[`search`] for one query that comes from `video` (or its `span`, in seconds): the rows of the query itself
        (that video, or its moments that overlap the span) are left out of the results."""
        own = sum(_overlaps(row, video, span) for row in self.rows)
        hits = self.search(query, top_k=top_k + own)[0]
        return [hit for hit in hits if not _overlaps(hit, video, span)][:top_k]

    def load_feature_model(self, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
        """The index's model and video processor as they computed its features (backbone, dtype, frame sampling),
        to embed queries with [`query_engine`]; refused if the model's weights changed since. `dtype`: for an index
        that did not record its own."""
        from .inference import load_model
        from .loading import model_fingerprint

        if self.model is None or model_fingerprint(self.model) != self.model_fingerprint:
            raise InputError(
                f"The model of the index, {self.model}, is not the one it was built with any more (other weights): "
                "rebuild the index from its videos (`timesformer-hf index` with `overwrite=True`), or query it with "
                "its own features."
            )
        dtype = self.settings.get("dtype") or dtype
        model, processor = load_model(self.model, task="features", device=device, dtype=dtype)
        if self.settings.get("frame_sampling"):
            processor.frame_sampling = self.settings["frame_sampling"]
        return model, processor

    def query_engine(self, model: Any, processor: Any, span: tuple[float, float] | None = None) -> Any:
        """An [`~timesformer_hf.inference.InferenceEngine`] that computes a video's feature as the index's were
        (pool, views, windows: a video's mean), or one clip of its `span` (seconds) as a window of it would be."""
        from .inference import InferenceEngine

        settings = self.settings
        views = (
            {"span": span}
            if span is not None
            else {
                "num_clips": settings.get("num_clips"),
                "window": settings.get("window"),
                "stride": settings.get("stride"),
            }
        )
        return InferenceEngine(
            model,
            processor,
            output=settings.get("pool") or "cls",
            num_crops=settings.get("num_crops") or 1,
            **views,
        )

    def recall_at_10(self, num_queries: int = 1000, seed: int = 0) -> float:
        """The share of the exact top 10 that the index finds, over up to `num_queries` of its own rows as queries
        (1.0 for an exhaustive index)."""
        if not self.approximate:
            return 1.0
        rng = np.random.default_rng(seed)
        queries = self.vectors(
            sorted(rng.choice(len(self.rows), min(num_queries, len(self.rows)), replace=False))
        )
        k = min(10, len(self.rows))
        exact = self._faiss.ResultHeap(len(queries), k, keep_max=True)  # the exact top k, a chunk at a time
        for start in _chunks(len(self.rows)):
            chunk = self._index.reconstruct_n(start, min(CHUNK_ROWS, len(self.rows) - start))
            scores, ids = self._faiss.knn(
                queries, chunk, min(k, len(chunk)), metric=self._faiss.METRIC_INNER_PRODUCT
            )
            exact.add_result(scores, ids + start)
        exact.finalize()
        _, found = self._index.search(queries, k)
        hits = sum(len(set(a) & set(b)) for a, b in zip(exact.I.tolist(), found.tolist(), strict=True))
        return hits / exact.I.size

    def save(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the index folder atomically (`index.json`, `rows.parquet`, `index.faiss`)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = Path(folder)
        check_output_dir(folder, overwrite=overwrite, written_by=(META_FILE,))
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = make_staging_dir(folder, "index")
        try:
            schema = pa.schema(
                [
                    ("video", pa.string()),
                    ("start", pa.float64()),
                    ("end", pa.float64()),
                    ("feature", pa.list_(pa.float32(), self.dim)),
                ]
            )
            with pq.ParquetWriter(staging / ROWS_FILE, schema) as writer:
                for start in _chunks(len(self.rows)):
                    rows = self.rows[start : start + CHUNK_ROWS]
                    vectors = self._index.reconstruct_n(start, len(rows))
                    columns = {key: [row[key] for row in rows] for key in ("video", "start", "end")}
                    feature = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dim)
                    writer.write_table(pa.table({**columns, "feature": feature}, schema=schema))
            self._faiss.write_index(self._index, str(staging / INDEX_FILE))
            meta = {
                "model": self.model,
                "model_fingerprint": self.model_fingerprint,
                "rows": len(self.rows),
                "dim": self.dim,
                "kind": "hnsw" if self.approximate else "exact",
                "exact_limit": self.exact_limit,
                "recall_at_10": self.recall_at_10(),
                "settings": self.settings,
            }
            (staging / META_FILE).write_text(json.dumps(meta, indent=2))
            replace_dir(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> VideoIndex:
        """An index saved by [`save`]."""
        import pyarrow.parquet as pq

        folder = Path(folder)
        if not (folder / META_FILE).is_file():
            raise FileNotFoundError(
                f"{folder} is not a video index (no {META_FILE}): build one with `timesformer-hf index`."
            )
        meta = json.loads((folder / META_FILE).read_text())
        # the features are in the FAISS index: the rows alone are read
        table = pq.read_table(folder / ROWS_FILE, columns=["video", "start", "end"]).to_pydict()
        rows = [
            {"video": video, "start": start, "end": end}
            for video, start, end in zip(table["video"], table["start"], table["end"], strict=True)
        ]
        faiss = require("faiss", "Video search")
        return cls(
            None,
            rows,
            model=meta["model"],
            model_fingerprint=meta["model_fingerprint"],
            exact_limit=meta["exact_limit"],
            settings=meta.get("settings"),
            index=faiss.read_index(str(folder / INDEX_FILE)),
        )
