"""Where labelled videos come from: a class-folder tree, a CSV/JSON list, or a `datasets` data set.

[`VideoSource`] names a source and [`VideoSource.load`] reads one split of it into the table every consumer
(training, `evaluate`, `features`) takes: a `video` column of paths, bytes or `{"path", "bytes"}` values (decoded
later by this package's PyAV reader, from memory) and a `label` column of `ClassLabel` ids, or of lists of them
(`List(ClassLabel)`) for multi-label data.

A `datasets` source is a Hub id or a local path that `datasets.load_dataset` reads (`videofolder`, Parquet,
WebDataset and Arrow files) or a folder written by `save_to_disk`. Its video column may be a `Video` feature (read
undecoded, so no torchcodec is needed), a string column of paths, or a binary column; its labels a `ClassLabel`
(whose names become `id2label`), names or integers (numbered by the rule of [`~timesformer_hf.data.labels`]), or
lists of those. With `streaming=True` it is an
`IterableDataset`, read as it is used.

Example:

```python
>>> from timesformer_hf.data import VideoSource
>>> source = VideoSource.from_datasets("user/my-videos", video_column_name="mp4", label_column_name="cls")
>>> train = source.load("train", label_names=["archery", "bowling"])  # doctest: +SKIP
>>> train.features["label"]  # doctest: +SKIP
ClassLabel(names=['archery', 'bowling'])
>>> VideoSource.from_path("data/train").load().features["label"].names  # sub-folder names  # doctest: +SKIP
```
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    IterableDataset,
    LargeList,
    List,
    Value,
)

from ..errors import InputError
from ..files import file_fingerprint
from ..video import stored_video_name
from .labels import encode_labels, is_multi_label, is_regression
from .local import load_video_dataset

__all__ = [
    "MissingSplitError",
    "NamedVideos",
    "SourceKind",
    "VideoSource",
    "video_names",
]

SourceKind = Literal["folder", "list", "datasets"]
_STRING_TYPES = ("string", "large_string")
_BINARY_TYPES = ("binary", "large_binary")
# A saved data set streams as this many contiguous shards at most, so that several processes each read their own.
_SAVED_DATASET_SHARDS = 64


class MissingSplitError(InputError):
    """A `datasets` source has no split of the name asked for."""


@dataclass(frozen=True)
class VideoSource:
    """A source of labelled videos (see the module's documentation).

    Args:
        location: A folder, a list file, or (kind `"datasets"`) a Hub id or a local path for `datasets`.
        kind: `"folder"` (one sub-folder per class), `"list"` (.csv/.json/.jsonl) or `"datasets"`.
        config_name: The `datasets` configuration.
        video_column_name: Column of the videos (list files and `datasets`).
        label_column_name: Column of the labels; `None` reads the videos of a `datasets` source only (features).
        streaming: Read a `datasets` source as an `IterableDataset`.
        token: Hub token for private data sets (default: the saved login).
    """

    location: str
    kind: SourceKind
    config_name: str | None = None
    video_column_name: str = "video"
    label_column_name: str | None = "label"
    streaming: bool = False
    token: str | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike, **kwargs: Any) -> VideoSource:
        """A class-folder tree (a folder) or a video list (a file); `FileNotFoundError` when there is neither."""
        if not Path(path).exists():
            raise FileNotFoundError(errno.ENOENT, "No such folder or list file", os.fspath(path))
        return cls(os.fspath(path), "folder" if Path(path).is_dir() else "list", **kwargs)

    @classmethod
    def from_datasets(cls, name: str, **kwargs: Any) -> VideoSource:
        """A Hub id or local path read by `datasets` (`load_from_disk` for a `save_to_disk` folder)."""
        return cls(name, "datasets", **kwargs)

    @property
    def name(self) -> str:
        """A readable name (for model cards): the Hub id or the data set's folder name; for a class folder or a list
        file, the name of the folder holding it (`data` for `data/train`)."""
        if self.hub_id:
            return self.hub_id
        path = Path(self.location).resolve()
        return path.name if self.kind == "datasets" else path.parent.name

    @property
    def hub_id(self) -> str | None:
        """The Hub id of a `datasets` source that is not a local path."""
        return self.location if self.kind == "datasets" and not Path(self.location).exists() else None

    def load(
        self,
        split: str | None = None,
        *,
        label_names: Sequence[str] | None = None,
        multi_label: bool | None = None,
        regression: bool | None = None,
    ) -> Dataset | IterableDataset:
        """Read `split` (ignored for folders and lists: one split each) into `video` and `label` columns.

        Args:
            split: The `datasets` split, e.g. `"train"` (default: the only one).
            label_names: Class names in id order. Labels given as names or ids are encoded with them, and a
                `ClassLabel` with other names is mapped onto them by name (pass the training labels when loading
                the validation split or evaluating a model). Streamed names or ids need them up front.
            multi_label: Refuse several labels per video (`False`), or decide from the data (`None`); for a list
                file, `True` reads its labels as lists even where every row has one (a multi-label validation
                list), see [`~data.video_list_dataset`].
            regression: Read the labels as float targets (`True`; float columns are targets by default), or
                refuse targets (`False`, for a classifier).

        Raises:
            MissingSplitError: For a missing split.
            ValueError: For a missing column, or labels that are not among `label_names`.
        """
        if self.kind == "folder":
            if regression:
                raise InputError(
                    f"{self.location} is a folder of class sub-folders, which holds classes, not regression "
                    "targets: give the videos and their values as a list file (video,label rows)."
                )
            return load_video_dataset(self.location, label_names=label_names)
        if self.kind == "list":
            columns = {"video_column": self.video_column_name, "label_column": self.label_column_name}
            return load_video_dataset(
                self.location,
                label_names=label_names,
                multi_label=multi_label,
                regression=regression,
                **columns,
            )
        dataset = self._load_split(split)
        dataset = _select_columns(dataset, self, split)
        if self.label_column_name is None:
            return dataset
        where = f"{self.location} ({split or 'split'})"
        if regression or is_regression(dataset.features["label"]):
            if regression is False:
                raise InputError(
                    f"The labels of {where} are numbers with fractions, the targets of a regression model, but this "
                    "model classifies: give class labels, or use a regression model."
                )
            return dataset.cast_column("label", Value("float32"))
        dataset = _encode_labels(dataset, label_names, self.streaming, where)
        if multi_label is False and is_multi_label(dataset.features["label"]):
            raise InputError(
                f"{where} gives several labels per video, but one label per video is expected here: use a "
                "multi-label model (trained on such a set), or a label column with one label per row."
            )
        return dataset

    def _load_split(self, split: str | None) -> Dataset | IterableDataset:
        path = Path(self.location)
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            loaded = datasets.load_from_disk(self.location)
            if isinstance(loaded, DatasetDict):
                loaded = _pick_split(loaded, split, self.location)
            if self.streaming:
                return loaded.to_iterable_dataset(num_shards=max(1, min(len(loaded), _SAVED_DATASET_SHARDS)))
            return loaded
        try:
            loaded = datasets.load_dataset(
                self.location, self.config_name, split=split, streaming=self.streaming, token=self.token
            )
        except ValueError as error:
            if not str(error).lower().startswith(("unknown split", "bad split")):  # not streamed, streamed
                raise
            raise MissingSplitError(
                f"{self.location} has no split {split!r} ({error}).", argument="split"
            ) from error
        if isinstance(loaded, DatasetDict | datasets.IterableDatasetDict):
            loaded = _pick_split(loaded, split, self.location)
        return loaded


def _pick_split(splits: Any, split: str | None, location: str) -> Any:
    if split is None and len(splits) == 1:
        return next(iter(splits.values()))
    if split is None:
        raise MissingSplitError(
            f"{location} has several splits, {list(splits)}: choose one.", argument="split"
        )
    if split not in splits:
        raise MissingSplitError(
            f"{location} has no split {split!r}; its splits are {list(splits)}: choose one.", argument="split"
        )
    return splits[split]


def _select_columns(
    dataset: Dataset | IterableDataset, source: VideoSource, split: str | None
) -> Dataset | IterableDataset:
    """Keep the video and label columns, named `video` and `label`, the videos left undecoded."""
    features = dataset.features
    if features is None:
        raise InputError(
            f"{source.location} does not declare its columns when streamed: load it without `streaming=True`."
        )
    wanted = {"`video_column_name=`": source.video_column_name}
    if source.label_column_name is not None:
        wanted["`label_column_name=`"] = source.label_column_name
    missing = {option: column for option, column in wanted.items() if column not in features}
    if missing:
        raise InputError(
            f"{source.location} ({split or 'split'}) has no column(s) {list(missing.values())}: its columns are "
            f"{list(features)}; set {' / '.join(missing)} to one of them."
        )
    if source.video_column_name == source.label_column_name:
        raise InputError(
            f"`video_column_name=` and `label_column_name=` both name {source.video_column_name!r}: the videos and "
            f"the labels are two columns of {list(features)}."
        )
    video = features[source.video_column_name]
    if not isinstance(video, datasets.Video) and not (
        isinstance(video, Value) and video.dtype in _STRING_TYPES + _BINARY_TYPES
    ):
        raise InputError(
            f"Column {source.video_column_name!r} of {source.location} holds {video}, not videos: it must be a Video "
            "feature, paths (strings) or video bytes (binary); set `video_column_name=`."
        )
    dataset = dataset.select_columns(list(wanted.values()))
    if isinstance(video, datasets.Video):
        dataset = dataset.cast_column(source.video_column_name, datasets.Video(decode=False))
    renames = {source.video_column_name: "video", source.label_column_name: "label"}
    return dataset.rename_columns(
        {old: new for old, new in renames.items() if old is not None and old != new}
    )


def _holds_lists(feature: Any) -> bool:
    """Whether a (not yet encoded) label feature holds several labels per video: a `List` of anything."""
    return isinstance(feature, List | LargeList)


def _encode_labels(
    dataset: Dataset | IterableDataset, label_names: Sequence[str] | None, streaming: bool, where: str
) -> Dataset | IterableDataset:
    """Labels as `ClassLabel` ids (or lists of them), with `label_names` when given."""
    feature = dataset.features["label"]
    multi = _holds_lists(feature)
    inner = feature.feature if multi else feature
    if isinstance(inner, ClassLabel):
        if label_names is None or list(inner.names) == list(label_names):
            return dataset
        return _rename_classes(dataset, inner.names, list(label_names), multi, where)
    if not isinstance(inner, Value) or not (inner.dtype in _STRING_TYPES or inner.dtype.startswith("int")):
        raise InputError(
            f"The labels of {where} are {feature}: expected class names, integer ids, a ClassLabel, or lists of "
            "those; set `label_column_name=`."
        )
    if streaming:  # encoded row by row, as they are read
        if label_names is None:
            raise InputError(
                f"The labels of {where} are {'names' if inner.dtype in _STRING_TYPES else 'ids'} without a "
                "ClassLabel, and a streamed data set is not read up front: give the class names in id order "
                "(`label_names=`)."
            )
        target = ClassLabel(names=list(label_names))
        features = dataset.features.copy()
        features["label"] = List(target) if multi else target

        def encode(label: Any) -> dict[str, Any]:
            ids = encode_labels(label if multi else [label], target.names, where)[1]
            return {"label": ids if multi else ids[0]}

        return dataset.map(encode, input_columns="label", features=features)
    rows = dataset["label"]
    names, flat_ids = encode_labels(_flat(rows, multi), label_names, where)
    ids, start = [], 0
    for row in rows if multi else ():
        ids.append(flat_ids[start : start + len(row)])
        start += len(row)
    target = ClassLabel(names=names)
    dataset = dataset.remove_columns("label").add_column("label", ids if multi else flat_ids)
    return dataset.cast_column("label", List(target) if multi else target)


def _flat(labels: Sequence[Any], multi: bool) -> list[Any]:
    return [label for row in labels for label in row] if multi else list(labels)


def _rename_classes(
    dataset: Dataset | IterableDataset, names: Sequence[str], label_names: list[str], multi: bool, where: str
) -> Dataset | IterableDataset:
    """Map a `ClassLabel`'s ids onto `label_names` by name."""
    unknown = sorted(set(names) - set(label_names))
    if unknown:
        raise InputError(
            f"{where} has classes {unknown[:10]} that are not among the {len(label_names)} labels "
            f"{label_names[:20]} (the training set's or the model's)."
        )
    new_ids = [label_names.index(name) for name in names]
    target = ClassLabel(names=label_names)
    features = dataset.features.copy()
    features["label"] = List(target) if multi else target

    def rename(label: Any) -> dict[str, Any]:
        return {"label": [new_ids[i] for i in label] if multi else new_ids[label]}

    return dataset.map(rename, input_columns="label", features=features)


def video_names(dataset: Dataset, split: str | None = None) -> list[str]:
    """A distinct name per row for results: each video's path when they are all distinct, else `<split>/<index>`.

    Only the paths are read (embedded videos stay on disk).

    Example:

    ```python
    >>> video_names(Dataset.from_dict({"video": [b"...", b"..."]}), "test")
    ['test/0', 'test/1']

    ```
    """
    column = dataset.select_columns("video").with_format("arrow")[:].column("video")
    if pa.types.is_struct(column.type):
        paths = pc.struct_field(column, "path").to_pylist()
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        paths = column.to_pylist()
    else:
        paths = [None] * len(column)
    if all(paths) and len(set(paths)) == len(paths):
        return paths
    return [f"{split or 'data'}/{index}" for index in range(len(paths))]


class NamedVideos:
    """The videos of a data set, row by row, under the names of [`video_names`]: what the inference engine reads.

    A video keeps its path when that is its name; embedded bytes (and a path whose name differs) are handed over
    as `{"path": name, "bytes": ...}`, so results carry the name. Rows are read when asked for, in the engine's
    workers.

    Example:

    ```python
    >>> videos = NamedVideos(Dataset.from_dict({"video": [b"\\x00", b"\\x01"]}), "test")
    >>> videos.names, videos[1]
    (['test/0', 'test/1'], {'path': 'test/1', 'bytes': b'\\x01'})

    ```
    """

    def __init__(self, dataset: Dataset, split: str | None = None) -> None:
        self.dataset = dataset.select_columns("video")
        self.names = video_names(dataset, split)

    def __len__(self) -> int:
        return len(self.names)

    def fingerprints(self) -> list[str]:
        """What changes when a row's video changes: a path's size and modification time, else the data set's
        fingerprint (`datasets` derives it from the data files and every transform) and the row."""
        if all(path == name for path, name in zip(self._paths(), self.names, strict=True)):
            return [file_fingerprint(path) for path in self.names]
        return [f"{self.dataset._fingerprint}#{index}" for index in range(len(self))]

    def _paths(self) -> list[str | None]:
        column = self.dataset.with_format("arrow")[:].column("video")
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            return column.to_pylist()
        return [None] * len(column)

    def __getitem__(self, index: int) -> str | dict[str, Any]:
        video, name = self.dataset[index]["video"], self.names[index]
        data = video.get("bytes") if isinstance(video, dict) else video if isinstance(video, bytes) else None
        if data is None:
            path = stored_video_name(video)
            if path == name:
                return path
            data = Path(path).read_bytes()
        return {"path": name, "bytes": data}
