"""`timesformer_hf.data.labels`: one rule for label ids, the same from every source."""

import json

import pytest
from datasets import ClassLabel, Dataset, Value

from timesformer_hf.data import (
    VideoSource,
    class_label,
    encode_labels,
    flip_swapped_labels,
    load_video_dataset,
    natural_sorted,
)

NAMES = ["0", "2", "10", "1"]  # integer-valued names, in no order


def test_natural_order():
    assert natural_sorted(["10", "2", "0", "1", "2"]) == ["0", "1", "2", "10"]
    assert natural_sorted(["clip10", "Clip2", "clip1", "b", "a"]) == ["a", "b", "clip1", "Clip2", "clip10"]


def test_encode_labels_by_name_or_by_id():
    assert encode_labels([2, 10, 0]) == (["0", "2", "10"], [1, 2, 0])
    assert encode_labels(["run", "walk"], ["walk", "run"]) == (["walk", "run"], [1, 0])
    assert encode_labels([1, 0], ["walk", "run"]) == (["walk", "run"], [1, 0])  # ids into the given names
    with pytest.raises(ValueError, match=r"labels \['swim'\] that are not among"):
        encode_labels(["swim"], ["walk", "run"])
    with pytest.raises(ValueError, match="`label_names=`"):
        encode_labels([5], ["walk", "run"])


def test_every_source_gives_the_same_ids(tmp_path):
    """A class folder, a CSV list, a JSON list with integers and a `datasets` column (names and integers)."""
    folder = tmp_path / "folder"
    for name in NAMES:
        (folder / name).mkdir(parents=True)
        (folder / name / f"v{name}.mp4").write_bytes(b"")
    videos = [f"folder/{name}/v{name}.mp4" for name in NAMES]
    (tmp_path / "list.csv").write_text(
        "video,label\n" + "".join(f"{v},{n}\n" for v, n in zip(videos, NAMES, strict=True))
    )
    rows = [{"video": v, "label": int(n)} for v, n in zip(videos, NAMES, strict=True)]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    Dataset.from_dict({"video": videos, "label": NAMES}).save_to_disk(tmp_path / "strings")
    Dataset.from_dict({"video": videos, "label": [int(n) for n in NAMES]}).save_to_disk(tmp_path / "integers")

    loaded = [
        load_video_dataset(folder),
        load_video_dataset(tmp_path / "list.csv"),
        load_video_dataset(tmp_path / "list.json"),
        VideoSource.from_datasets(str(tmp_path / "strings")).load(),
        VideoSource.from_datasets(str(tmp_path / "integers")).load(),
    ]
    for dataset in loaded:
        names = dataset.features["label"].names
        assert names == ["0", "1", "2", "10"]
        by_video = {
            video.rsplit("/", 1)[-1]: names[label]
            for video, label in zip(dataset["video"], dataset["label"], strict=True)
        }
        assert by_video == {f"v{name}.mp4": name for name in NAMES}


def test_class_names_fix_the_order(tmp_path):
    (tmp_path / "list.csv").write_text("video,label\na.mp4,walk\nb.mp4,run\n")
    dataset = load_video_dataset(tmp_path / "list.csv", label_names=["walk", "run"])
    assert dataset.features["label"].names == ["walk", "run"] and dataset["label"] == [0, 1]


def test_class_label_of_a_feature_that_is_not_one():
    assert class_label(ClassLabel(names=["a"])).names == ["a"]
    with pytest.raises(ValueError, match="cast it"):
        class_label(Value("string"))


def test_labels_a_flip_swaps():
    assert flip_swapped_labels(["left_1", "right_1", "left_2", "up"]) == [("left_1", "right_1")]
    ssv2 = [
        "Pushing something from left to right",
        "Pushing something from right to left",
        "Turning the camera left",
    ]
    assert flip_swapped_labels(ssv2) == [(ssv2[0], ssv2[1])]
    assert flip_swapped_labels(["Left turn", "Right turn", "moving leftward", "moving rightward"]) == [
        ("Left turn", "Right turn"),
        ("moving leftward", "moving rightward"),
    ]
    assert flip_swapped_labels(["bright", "bleft", "copyright", "archery"]) == []  # words, not parts of words
