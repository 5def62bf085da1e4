"""data sources."""

import logging

import torch
from conftest import sample_video_path
from datasets import ClassLabel, Dataset, Features, List, Value, Video
from test_training import Records

from timesformer_hf import TimeSformerVideoProcessor
from timesformer_hf.data import (
    VideoClipTransform,
    VideoSource,
    is_multi_label,
    probe_videos,
)
from timesformer_hf.video import read_video


def test_source_names(tmp_path):
    hub = VideoSource.from_datasets("user/clips")
    assert (hub.name, hub.hub_id) == ("user/clips", "user/clips")
    (tmp_path / "clips").mkdir()
    local = VideoSource.from_datasets(str(tmp_path / "clips"))
    assert (local.name, local.hub_id) == ("clips", None)
    assert VideoSource.from_path(tmp_path / "clips").name == tmp_path.name  # data/train: "data"


def test_multi_label_columns_become_lists_of_class_labels(tmp_path):
    path = str(sample_video_path())
    rows = Dataset.from_dict({"video": [path, path], "label": [["run", "jump"], ["jump"]]})
    rows.save_to_disk(tmp_path / "names")
    loaded = VideoSource.from_datasets(str(tmp_path / "names")).load()
    assert loaded.features["label"] == List(ClassLabel(names=["jump", "run"])) and is_multi_label(
        loaded.features["label"]
    )
    assert loaded["label"] == [[1, 0], [0]]
    ids = Features({"video": Value("string"), "label": List(ClassLabel(names=["run", "jump"]))})
    Dataset.from_dict({"video": [path], "label": [[0, 1]]}, features=ids).save_to_disk(tmp_path / "ids")
    loaded = VideoSource.from_datasets(str(tmp_path / "ids")).load(label_names=["jump", "run"])
    assert loaded["label"] == [[1, 0]]  # mapped by name


def test_embedded_bytes_decode_as_their_file_and_broken_ones_are_skipped_and_counted(tmp_path):
    path = sample_video_path("carphone_pristine.mp4")
    dataset = Dataset.from_dict(
        {
            "video": [
                {"path": "good.mp4", "bytes": path.read_bytes()},
                {"path": "broken.mp4", "bytes": b"not a video"},
            ],
            "label": [0, 0],
        },
        features=Features({"video": Video(decode=False), "label": ClassLabel(names=["a"])}),
    )
    records = Records()
    package_logger = logging.getLogger("timesformer_hf")
    package_logger.addHandler(records)
    try:
        probed = probe_videos(dataset)
        transform = VideoClipTransform(TimeSformerVideoProcessor(num_frames=4), training=False)
        clips = transform(
            {"video": list(dataset["video"]) + [{"path": None, "bytes": b"\x00" * 64}], "label": [0, 0, 0]}
        )
    finally:
        package_logger.removeHandler(records)
    assert len(probed) == 1 and probed[0]["total_num_frames"] == read_video(path).shape[0]
    messages = [record.getMessage() for record in records.records]
    assert any("Skipping unreadable video broken.mp4" in m for m in messages)
    assert any("Skipped 1 of 2 videos" in m for m in messages)
    assert clips["pixel_values"][1] is None and clips["pixel_values"][2] is None and transform.failures == 2
    assert any("(embedded video)" in m and "2 skipped so far" in m for m in messages)
    from_file = transform.clip(str(path))
    assert torch.equal(clips["pixel_values"][0], from_file)
