"""Data sets from video folders and lists, lazy decoding, augmentation, broken videos, the metric module."""

import json
import logging
from types import SimpleNamespace

import evaluate
import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

import timesformer_hf.data.transforms
from timesformer_hf import TimeSformerVideoProcessor
from timesformer_hf.data import VideoClipTransform, collate_videos, load_video_dataset, probe_videos
from timesformer_hf.metrics import TOP_K_ACCURACY
from timesformer_hf.synthetic import motion_labels, motion_video, write_motion_dataset
from timesformer_hf.video import VideoDecodeError


@pytest.fixture(scope="module")
def motion_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    write_motion_dataset(root, num_train_per_class=2, num_eval_per_class=1, num_frames=4, size=32)
    return root


def processor(num_frames=4):
    return TimeSformerVideoProcessor(
        num_frames=num_frames,
        frame_sampling="uniform",
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
    )


def test_motion_classes_share_their_frames():
    labels = motion_labels(num_frames=8)
    assert labels == ["left_1", "left_2", "right_1", "right_2"]
    videos = {label: motion_video(label, num_frames=8, rng=0) for label in labels}
    # same multiset of frames in every class, different order
    frame_sets = {label: sorted(frame.tobytes() for frame in video) for label, video in videos.items()}
    assert len({tuple(frames) for frames in frame_sets.values()}) == 1
    assert len({video.tobytes() for video in videos.values()}) == 4
    with pytest.raises(ValueError, match="whole sweeps"):
        motion_labels(num_frames=6, speeds=(1, 4))


def test_folder_dataset_and_transforms(motion_dir):
    train = probe_videos(load_video_dataset(motion_dir / "train"))
    assert train.features["label"].names == motion_labels(num_frames=4)
    assert len(train) == 8 and set(train["total_num_frames"]) == {4}

    train.set_transform(VideoClipTransform(processor(), training=True, horizontal_flip=False))
    batch = collate_videos([train[i] for i in range(len(train))])
    assert batch["pixel_values"].shape == (8, 4, 3, 32, 32)
    assert batch["labels"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]

    validation = probe_videos(load_video_dataset(motion_dir / "validation", label_names=motion_labels(4)))
    validation.set_transform(VideoClipTransform(processor(), training=False))
    first, again = validation[0]["pixel_values"], validation[0]["pixel_values"]
    torch.testing.assert_close(first, again)  # evaluation is deterministic
    expected = processor()(
        str(validation.with_format(None)[0]["video"]), do_sample_frames=True, return_tensors="pt"
    )
    torch.testing.assert_close(first, expected["pixel_values"][0])


def test_training_augmentation_is_random_crop_of_jittered_short_side():
    transform = VideoClipTransform(processor(), training=True)
    assert transform.short_side_range == (37, 46)  # [256, 320] scaled to a 32 crop
    video = torch.arange(4 * 3 * 40 * 60, dtype=torch.float32).reshape(4, 3, 40, 60).to(torch.uint8)
    torch.manual_seed(0)
    outputs = {transform.augment(video).numpy().tobytes() for _ in range(5)}
    assert len(outputs) > 1
    assert transform.augment(video).shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="crop size"):
        VideoClipTransform(processor(), training=True, short_side_range=(16, 20))


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


def test_broken_videos_are_logged_and_skipped(tmp_path, motion_dir, caplog):
    folder = tmp_path / "train" / "left_1"
    folder.mkdir(parents=True)
    good = next((motion_dir / "train" / "left_1").glob("*.mp4"))
    (folder / "good.mp4").write_bytes(good.read_bytes())
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    (folder / "truncated.mp4").write_bytes(good.read_bytes()[:200])
    with caplog.at_level(logging.WARNING, logger="timesformer_hf"):
        dataset = probe_videos(load_video_dataset(tmp_path / "train"))
    assert [path.rsplit("/", 1)[-1] for path in dataset["video"]] == ["good.mp4"]
    assert "broken.mp4" in caplog.text and "truncated.mp4" in caplog.text

    # a video that breaks after probing is dropped from its batch, not fatal
    dataset.set_transform(VideoClipTransform(processor(), training=False))
    (folder / "good.mp4").write_bytes(b"")
    examples = [dataset[0]]
    assert examples[0]["pixel_values"] is None
    with pytest.raises(RuntimeError, match="failed to decode"):
        collate_videos(examples)


def test_top_k_metric_is_shipped_and_offline():
    metric = evaluate.load(TOP_K_ACCURACY)
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
    result = metric.compute(predictions=scores, references=[2, 0, 0], k=[1, 2])
    assert result == {"top1_accuracy": pytest.approx(1 / 3), "top2_accuracy": pytest.approx(2 / 3)}


def test_probe_drops_a_broken_video_after_the_first_thousand(monkeypatch):
    # `map` writes 1000-row batches: a column typed from an all-readable first batch must still take an error
    def fake_probe(path):
        if path == "video_1005.mp4":
            raise VideoDecodeError("truncated")
        return SimpleNamespace(total_num_frames=8, fps=30.0)

    monkeypatch.setattr(timesformer_hf.data.transforms, "probe_video", fake_probe)
    features = Features({"video": Value("string"), "label": ClassLabel(names=["a"])})
    dataset = Dataset.from_dict(
        {"video": [f"video_{i}.mp4" for i in range(1010)], "label": [0] * 1010}, features=features
    )
    probed = probe_videos(dataset)
    assert len(probed) == 1009 and "video_1005.mp4" not in probed["video"]
    assert probed.column_names == ["video", "label", "total_num_frames", "fps"]


def test_default_short_side_range_follows_the_original():
    def range_for(crop):
        crop_processor = TimeSformerVideoProcessor(crop_size={"height": crop, "width": crop})
        return VideoClipTransform(crop_processor, training=True).short_side_range

    assert range_for(224) == (256, 320)
    assert range_for(448) == (448, 512)
    assert range_for(112) == (128, 160)  # other crops: the 224 range scaled


def test_transforms_take_one_view_whatever_the_saved_processor_says(tmp_path):
    multi_view = processor()
    multi_view.num_spatial_crops, multi_view.num_temporal_clips, multi_view.do_sample_frames = 3, 2, True
    multi_view.save_pretrained(tmp_path)
    loaded = TimeSformerVideoProcessor.from_pretrained(tmp_path)
    assert (loaded.num_spatial_crops, loaded.num_temporal_clips) == (3, 2)
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 64, 3), dtype=np.uint8)  # wide: crops differ
    expected = processor()(frames, return_tensors="pt")["pixel_values"][0]  # the centre crop
    evaluation = VideoClipTransform(loaded, training=False).transform(frames)
    torch.testing.assert_close(evaluation, expected)
    torch.manual_seed(0)
    assert VideoClipTransform(loaded, training=True).transform(frames).shape == (4, 3, 32, 32)


def test_top_k_metric_breaks_ties_by_index_like_argmax():
    metric = evaluate.load(TOP_K_ACCURACY)
    references = [0, 1, 2, 0, 3]
    result = metric.compute(predictions=np.zeros((5, 4)), references=references, k=[1, 2])
    assert result == {"top1_accuracy": pytest.approx(2 / 5), "top2_accuracy": pytest.approx(3 / 5)}


def test_motion_dataset_refuses_to_mix_with_old_videos(tmp_path):
    write_motion_dataset(tmp_path, num_train_per_class=2, num_eval_per_class=1, num_frames=4, size=32)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_motion_dataset(tmp_path, num_train_per_class=1, num_eval_per_class=1, num_frames=4, size=32)
    write_motion_dataset(
        tmp_path, num_train_per_class=1, num_eval_per_class=1, num_frames=4, size=32, overwrite=True
    )
    assert len(list((tmp_path / "train").rglob("*.mp4"))) == 4
    assert len(list((tmp_path / "validation").rglob("*.mp4"))) == 4
