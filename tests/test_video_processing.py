"""TimeSformerVideoProcessor: decoding, frame sampling, saved configs (its own and transformers'), views."""

import io
import json

import numpy as np
import pytest
import torch
from conftest import smooth_video
from transformers.video_utils import VideoMetadata

from timesformer_hf import TimeSformerImageProcessor, TimeSformerVideoProcessor
from timesformer_hf.synthetic import write_video


def test_video_processor_shares_the_transforms(tmp_path):
    video = smooth_video(8, 240, 320)
    image_values = TimeSformerImageProcessor()(video, return_tensors="pt")["pixel_values"]
    video_processor = TimeSformerVideoProcessor()
    torch.testing.assert_close(video_processor(video, return_tensors="pt")["pixel_values"], image_values)
    sampled = video_processor(
        video, do_sample_frames=True, num_frames=4, frame_sampling="uniform", return_tensors="pt"
    )
    torch.testing.assert_close(sampled["pixel_values"], image_values[:, [0, 2, 4, 7]])
    video_processor.save_pretrained(tmp_path)
    loaded = TimeSformerVideoProcessor.from_pretrained(tmp_path)
    assert (tmp_path / "video_preprocessor_config.json").exists() and loaded.frame_sampling == "kinetics"


def test_a_saved_processor_samples_num_frames_from_a_path_by_default(tmp_path):
    path = tmp_path / "video.mp4"
    write_video(path, smooth_video(40, 40, 40), fps=30)
    TimeSformerVideoProcessor(num_frames=4, sampling_rate=2).save_pretrained(tmp_path / "repo")
    processor = TimeSformerVideoProcessor.from_pretrained(tmp_path / "repo")
    assert processor(str(path), return_tensors="pt")["pixel_values"].shape[:2] == (1, 4)
    assert processor([str(path)] * 2, num_temporal_clips=2, return_tensors="pt")["pixel_values"].shape[
        :2
    ] == (4, 4)
    every_frame = processor(str(path), do_sample_frames=False, return_tensors="pt")["pixel_values"]
    assert every_frame.shape[:2] == (1, 40)


def test_paths_and_file_objects_are_decoded(tmp_path):
    path = tmp_path / "video.mp4"
    write_video(path, smooth_video(12, 40, 40), fps=30)
    processor = TimeSformerVideoProcessor(
        num_frames=4, frame_sampling="uniform", size={"shortest_edge": 32}, crop_size=32
    )
    expected = processor(str(path), return_tensors="pt")["pixel_values"]
    assert expected.shape[:2] == (1, 4)
    torch.testing.assert_close(processor(path, return_tensors="pt")["pixel_values"], expected)
    with path.open("rb") as file:
        torch.testing.assert_close(processor(file, return_tensors="pt")["pixel_values"], expected)
    batch = processor([path, io.BytesIO(path.read_bytes())], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(batch, torch.cat([expected, expected]))


def test_given_frames_are_sampled_only_when_asked_or_with_metadata():
    video = smooth_video(16, 40, 40)
    processor = TimeSformerVideoProcessor(
        num_frames=4, frame_sampling="uniform", size={"shortest_edge": 32}, crop_size=32
    )
    as_given = processor(video, return_tensors="pt")["pixel_values"]
    assert as_given.shape[:2] == (1, 16)
    torch.testing.assert_close(processor(list(video), return_tensors="pt")["pixel_values"], as_given)
    expected = as_given[:, [0, 5, 10, 15]]
    torch.testing.assert_close(
        processor(video, do_sample_frames=True, return_tensors="pt")["pixel_values"], expected
    )
    metadata = VideoMetadata(total_num_frames=16, fps=30.0)
    torch.testing.assert_close(
        processor(video, video_metadata=metadata, return_tensors="pt")["pixel_values"], expected
    )


def test_temporal_clips_need_frame_sampling():
    processor = TimeSformerVideoProcessor(num_frames=4, frame_sampling="kinetics", sampling_rate=2)
    video = smooth_video(16, 64, 80)
    with pytest.raises(ValueError, match="do_sample_frames=True"):
        processor(video, num_temporal_clips=2, return_tensors="pt")
    views = processor(
        video, do_sample_frames=True, num_temporal_clips=2, num_spatial_crops=3, return_tensors="pt"
    )
    assert views["pixel_values"].shape == (6, 4, 3, 224, 224)


@pytest.mark.parametrize("frame_sampling", ["uniform", "ssv2"])
def test_temporal_clips_with_a_whole_video_sampler_name_the_fix(frame_sampling):
    processor = TimeSformerVideoProcessor(num_frames=4, frame_sampling=frame_sampling, crop_size=64)
    video = smooth_video(16, 64, 80)
    expected = rf"frame_sampling='{frame_sampling}'.*pass `frame_sampling='kinetics'`"
    with pytest.raises(ValueError, match=expected):
        processor(video, do_sample_frames=True, num_temporal_clips=2, return_tensors="pt")
    # the README's multi-view call names the sampling, so it runs on any repo
    views = processor(
        video,
        do_sample_frames=True,
        frame_sampling="kinetics",
        num_temporal_clips=2,
        num_spatial_crops=3,
        return_tensors="pt",
    )
    assert views["pixel_values"].shape == (6, 4, 3, 64, 64)


def test_sample_indices_follows_the_processor_settings():
    uniform = TimeSformerVideoProcessor(num_frames=4, frame_sampling="uniform")
    assert uniform.sample_indices(100).tolist() == [0, 33, 66, 99]
    ssv2 = TimeSformerVideoProcessor(num_frames=8, frame_sampling="ssv2")
    assert ssv2.sample_indices(50).tolist() == [3, 9, 15, 21, 27, 34, 40, 46]
    kinetics = TimeSformerVideoProcessor(num_frames=4, sampling_rate=2, target_fps=30.0)
    # a clip spans 4 * 2 frames at 30 fps; clip 1 of 2 starts at (100 - 8) * 1 / 2 = 46 and ends at 46 + 8 - 1,
    # and linspace(46, 53, 4) truncates to these
    assert kinetics.sample_indices(100, 30.0, clip_index=1, num_clips=2).tolist() == [46, 48, 50, 53]
    training = kinetics.sample_indices(100, 30.0, training=True, generator=0)
    assert len(training) == 4 and np.all(np.diff(training) > 0) and training.max() <= 99


def test_fps_samples_that_many_frames_per_second_of_video(tmp_path):
    processor = TimeSformerVideoProcessor(size={"shortest_edge": 32}, crop_size=32)
    metadata = VideoMetadata(total_num_frames=8, fps=4.0)  # 2 seconds
    assert processor.sample_frames(metadata, fps=3).tolist() == [0, 1, 2, 4, 5, 6]
    video = smooth_video(8, 40, 40)
    inputs = processor(video, do_sample_frames=True, fps=3, video_metadata=metadata, return_tensors="pt")
    expected = processor(video[[0, 1, 2, 4, 5, 6]], return_tensors="pt")
    torch.testing.assert_close(inputs["pixel_values"], expected["pixel_values"])
    path = tmp_path / "video.mp4"
    write_video(path, video, fps=4)
    from_path = processor(str(path), do_sample_frames=True, fps=3, return_tensors="pt")["pixel_values"]
    assert from_path.shape[1] == 6


def test_fps_without_the_video_frame_rate_is_an_error():
    processor = TimeSformerVideoProcessor()
    metadata = VideoMetadata(total_num_frames=8)
    with pytest.raises(ValueError, match="frame rate is unknown.*`num_frames` instead of `fps`"):
        processor.sample_frames(metadata, fps=3)
    with pytest.raises(ValueError, match="frame rate is unknown"):
        processor(smooth_video(8, 40, 40), do_sample_frames=True, fps=3, video_metadata=metadata)
    with pytest.raises(ValueError, match="pass an fps of at most 4"):
        processor.sample_frames(VideoMetadata(total_num_frames=8, fps=4.0), fps=5)
    with pytest.raises(ValueError, match="`fps` samples one clip"):
        processor.sample_frames(VideoMetadata(total_num_frames=8, fps=4.0), fps=3, num_temporal_clips=2)


def test_unknown_frame_sampling_is_named_before_the_clip_count():
    processor = TimeSformerVideoProcessor(num_frames=4)
    with pytest.raises(ValueError, match=r"must be one of \('kinetics', 'ssv2', 'uniform'\), got 'kinetic'"):
        processor.sample_indices(100, frame_sampling="kinetic", num_clips=2)


def test_a_config_saved_by_the_transformers_timesformer_video_processor_loads(tmp_path):
    """`transformers.TimesformerVideoProcessor` saves ImageNet statistics, no frame count and no sampling: the
    values saved are used, the rest are this processor's defaults."""
    from timesformer_hf import TimeSformerVideoProcessor

    saved = {
        "video_processor_type": "TimesformerVideoProcessor",
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "size": {"shortest_edge": 32},
        "crop_size": {"height": 32, "width": 32},
        "do_sample_frames": False,
        "num_frames": None,
        "fps": None,
        "resample": 2,
    }
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps(saved))
    processor = TimeSformerVideoProcessor.from_pretrained(tmp_path)
    assert list(processor.image_mean) == saved["image_mean"] and processor.do_sample_frames is False
    assert processor.num_frames == 8 and processor.frame_sampler.num_frames == 8
    video = np.full((5, 40, 48, 3), 128, dtype=np.uint8)
    pixel_values = processor(video, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 5, 3, 32, 32)  # the given frames, not sampled
    expected = (128 / 255 - torch.tensor(saved["image_mean"])) / torch.tensor(saved["image_std"])
    torch.testing.assert_close(pixel_values[0, 0, :, 0, 0], expected, atol=1e-5, rtol=0)
