"""Data sets from video folders and lists, lazy decoding, augmentation, broken videos, the metric module."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

import timesformer_hf.data.transforms
from timesformer_hf import TimeSformerVideoProcessor
from timesformer_hf.data import VideoClipTransform, collate_videos, load_video_dataset, probe_videos
from timesformer_hf.synthetic import motion_labels
from timesformer_hf.video import VideoDecodeError


def processor(num_frames=4):
    return TimeSformerVideoProcessor(
        num_frames=num_frames,
        frame_sampling="uniform",
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
    )


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
