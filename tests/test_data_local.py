"""data local."""

import json

import pytest

from timesformer_hf.data import (
    class_label,
    is_multi_label,
    load_video_dataset,
    video_list_dataset,
)


def test_list_dataset(tmp_path, motion_dir):
    videos = sorted((motion_dir / "train").rglob("*.mp4"))[:3]
    rows = [{"path": str(video.relative_to(motion_dir)), "class": video.parent.name} for video in videos]
    list_file = motion_dir / "list.jsonl"
    list_file.write_text("\n".join(json.dumps(row) for row in rows))
    dataset = load_video_dataset(list_file, video_column="path", label_column="class")
    assert dataset.features["label"].names == sorted({row["class"] for row in rows})
    assert dataset[0]["video"] == str(videos[0])
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("video,label\nmissing.mp4,3\n")
    assert load_video_dataset(csv_file).features["label"].names == ["3"]  # labels are names
    with pytest.raises(ValueError, match="no column"):
        load_video_dataset(list_file)


def test_json_list_with_several_labels_per_video(tmp_path):
    rows = [
        {"video": "a.mp4", "label": ["run", "jump"]},
        {"video": "b.mp4", "label": []},
        {"video": "c.mp4", "label": ["sit", "run", "run"]},
    ]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    dataset = load_video_dataset(tmp_path / "list.json")
    assert is_multi_label(dataset.features["label"])
    assert class_label(dataset.features["label"]).names == ["jump", "run", "sit"]
    assert dataset["label"] == [[0, 1], [], [1, 2]]
    assert dataset["video"][0] == str(tmp_path / "a.mp4")
    with pytest.raises(ValueError, match=r"\['sit'\] that are not among"):
        load_video_dataset(tmp_path / "list.json", label_names=["jump", "run"])
    with pytest.raises(ValueError, match="several labels for a video.*multi-label model"):
        video_list_dataset(tmp_path / "list.json", multi_label=False)


def test_csv_labels_separated_by_a_bar(tmp_path):
    (tmp_path / "list.csv").write_text("video,label\na.mp4,run|jump\nb.mp4,\nc.mp4,sit\n")
    dataset = video_list_dataset(tmp_path / "list.csv", label_names=["jump", "run", "sit", "swim"])
    assert dataset["label"] == [[0, 1], [], [2]]
    assert class_label(dataset.features["label"]).num_classes == 4
    # a list where no video has several labels is multi-label only when asked
    (tmp_path / "single.csv").write_text("video,label\na.mp4,run\nb.mp4,sit\n")
    assert not is_multi_label(video_list_dataset(tmp_path / "single.csv").features["label"])
    asked = video_list_dataset(tmp_path / "single.csv", multi_label=True)
    assert is_multi_label(asked.features["label"]) and asked["label"] == [[0], [1]]
