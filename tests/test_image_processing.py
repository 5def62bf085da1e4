"""TimeSformerImageProcessor: parity with transformers' PIL VideoMAE processor, inputs, multi-view, save/load."""

import io
import json
import threading
import time

import numpy as np
import PIL.Image
import pytest
import torch
from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil
from transformers.video_utils import VideoMetadata

from timesformer_hf import TimeSformerImageProcessor, TimeSformerVideoProcessor, average_view_scores
from timesformer_hf.synthetic import write_video
from timesformer_hf.video_transforms import _map_on_threads, resize_video, spatial_crop_offsets


def smooth_video(num_frames: int, height: int, width: int) -> np.ndarray:
    """Natural-looking frames: gradients and a moving blob, plus a little noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(num_frames):
        blob = 120 * np.exp(
            -((x - width * (0.3 + 0.05 * t)) ** 2 + (y - height / 2) ** 2) / (0.05 * width * height)
        )
        frame = np.stack([x / width * 255, y / height * 255, blob + 60], axis=-1)
        frames.append(frame + np.random.default_rng(t).normal(0, 8, frame.shape))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(240, 320), (320, 240), (256, 256), (272, 640), (144, 176)])
def test_matches_videomae_pil_processor(shape):
    video = smooth_video(4, *shape)
    ours = TimeSformerImageProcessor()(list(video), return_tensors="pt")["pixel_values"]
    reference = VideoMAEImageProcessorPil(image_mean=[0.45] * 3, image_std=[0.225] * 3)
    expected = reference(list(video), return_tensors="pt")["pixel_values"]
    assert ours.shape == expected.shape == (1, 4, 3, 224, 224)
    diff = (ours - expected).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.1


def test_input_formats_agree():
    video = smooth_video(3, 60, 80)
    processor = TimeSformerImageProcessor(size={"shortest_edge": 32}, crop_size=32)
    expected = processor(video, return_tensors="pt")["pixel_values"]
    inputs = {
        "list of numpy HWC": list(video),
        "PIL": [PIL.Image.fromarray(frame) for frame in video],
        "torch CHW": [torch.from_numpy(frame).permute(2, 0, 1) for frame in video],
        "torch THWC": torch.from_numpy(video),
        "numpy RGBA": [np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)]) for frame in video],
    }
    for name, value in inputs.items():
        torch.testing.assert_close(processor(value, return_tensors="pt")["pixel_values"], expected, msg=name)
    batch = processor([video, video[::-1]], return_tensors="np")["pixel_values"]
    assert isinstance(batch, np.ndarray) and batch.shape == (2, 3, 3, 32, 32)
    np.testing.assert_allclose(batch[1], expected[0].numpy()[::-1], atol=1e-6)


def test_a_single_image_is_a_one_frame_video():
    frame = smooth_video(1, 60, 80)[0]
    processor = TimeSformerImageProcessor(size={"shortest_edge": 32}, crop_size=32)
    expected = processor([frame], return_tensors="pt")["pixel_values"]
    assert expected.shape == (1, 1, 3, 32, 32)
    images = {
        "PIL": PIL.Image.fromarray(frame),
        "numpy HWC": frame,
        "torch CHW": torch.from_numpy(frame).permute(2, 0, 1),
    }
    for name, image in images.items():
        torch.testing.assert_close(processor(image, return_tensors="pt")["pixel_values"], expected, msg=name)


@pytest.mark.parametrize("processor_class", [TimeSformerImageProcessor, TimeSformerVideoProcessor])
def test_mean_and_std_are_per_rgb_channel(processor_class):
    rgba = np.concatenate([smooth_video(2, 40, 40), np.full((2, 40, 40, 1), 255, np.uint8)], axis=-1)
    processor = processor_class(size={"shortest_edge": 32}, crop_size=32)
    expected = processor(rgba[..., :3], image_mean=[0.1, 0.2, 0.3], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(
        processor(rgba, image_mean=[0.1, 0.2, 0.3], return_tensors="pt")["pixel_values"], expected
    )
    with pytest.raises(ValueError, match="`image_mean` must be one value or three.*alpha channel is dropped"):
        processor(rgba, image_mean=[0.5] * 4, image_std=[0.5] * 4)
    with pytest.raises(ValueError, match="`image_std` must be one value or three"):
        processor_class(image_std=[0.5, 0.5])(rgba)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_float_frames_of_any_precision(dtype, torch_threads):
    torch_threads(2)  # two chunks of frames, one on a helper thread
    video = torch.rand(6, 3, 32, 32)
    processor = TimeSformerImageProcessor(do_resize=False, crop_size=32, do_rescale=False)
    pixel_values = processor(video.to(dtype), return_tensors="pt")["pixel_values"]
    assert pixel_values.dtype == torch.float32
    expected = (video.to(dtype).float() - 0.45) / 0.225
    torch.testing.assert_close(pixel_values[0], expected, rtol=0, atol=1e-5)
    unchanged = processor(video.to(dtype), do_normalize=False, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(unchanged[0], video.to(dtype).float(), rtol=0, atol=0)


def test_normalization_values():
    video = np.full((2, 224, 224, 3), 255, dtype=np.uint8)
    pixel_values = TimeSformerImageProcessor()(video, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixel_values, torch.full_like(pixel_values, (1 - 0.45) / 0.225))


@pytest.fixture
def torch_threads():
    """Set `torch.set_num_threads` for one test."""
    previous = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(previous)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_frames_split_over_threads_give_the_same_values(threads, torch_threads):
    videos = [smooth_video(7, 60, 80), smooth_video(7, 60, 80)[::-1].copy()]
    mean, std = torch.tensor([0.3, 0.45, 0.7]), torch.tensor([0.2, 0.25, 0.35])
    processor = TimeSformerImageProcessor(
        size={"shortest_edge": 32}, crop_size=32, image_mean=mean.tolist(), image_std=std.tolist()
    )
    torch_threads(threads)
    views = processor(videos, num_spatial_crops=3, return_tensors="pt")["pixel_values"]
    expected = []
    for video in videos:  # one resize of the whole video, crops, then (x / 255 - mean) / std
        resized = resize_video(torch.from_numpy(video).permute(0, 3, 1, 2), processor.size).float()
        for position in range(3):
            top, left = spatial_crop_offsets(*resized.shape[-2:], 32, 32, position)
            crop = resized[..., top : top + 32, left : left + 32]
            expected.append((crop / 255 - mean.view(3, 1, 1)) / std.view(3, 1, 1))
    torch.testing.assert_close(views, torch.stack(expected), rtol=0, atol=1e-5)


def test_map_on_threads_keeps_order_and_raises_a_helper_failure(torch_threads):
    torch_threads(2)
    assert _map_on_threads(lambda item: item * 10, list(range(7))) == [0, 10, 20, 30, 40, 50, 60]
    started = []

    def job(index: int) -> None:
        started.append(index)
        time.sleep(0.02)  # long enough for the helper thread to take jobs
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(f"job {index} failed on a helper")

    with pytest.raises(RuntimeError, match="failed on a helper"):
        _map_on_threads(job, list(range(20)))
    assert len(started) < 20  # no job starts after the failure


def test_grad_mode_does_not_reach_the_helper_threads(torch_threads):
    torch_threads(2)
    video = torch.rand(8, 3, 40, 50, requires_grad=True)
    processor = TimeSformerImageProcessor(size={"shortest_edge": 32}, crop_size=32, do_rescale=False)
    with torch.no_grad():
        pixel_values = processor(video, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 8, 3, 32, 32) and not pixel_values.requires_grad


def test_three_spatial_crops_follow_the_long_side():
    assert [spatial_crop_offsets(224, 298, 224, 224, p) for p in (0, 1, 2)] == [(0, 0), (0, 37), (0, 74)]
    assert [spatial_crop_offsets(298, 224, 224, 224, p) for p in (0, 1, 2)] == [(0, 0), (37, 0), (74, 0)]
    video = smooth_video(2, 240, 320)
    processor = TimeSformerImageProcessor()
    views = processor([video, video], num_spatial_crops=3, return_tensors="pt")["pixel_values"]
    assert views.shape == (6, 2, 3, 224, 224)
    single = processor(video, return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(views[1], single)  # the middle view is the centre crop
    full = processor(video, do_center_crop=False, return_tensors="pt")["pixel_values"][0]  # 224 x 298
    torch.testing.assert_close(views[0], full[..., :224])
    torch.testing.assert_close(views[2], full[..., -224:])


def test_average_view_scores():
    logits = torch.randn(6, 5)
    scores = average_view_scores(logits, num_views=3)
    torch.testing.assert_close(scores[1], logits[3:].softmax(-1).mean(0))
    with pytest.raises(ValueError, match="consecutive"):
        average_view_scores(logits, num_views=4)


def test_save_and_load(tmp_path):
    processor = TimeSformerImageProcessor(
        crop_size={"height": 448, "width": 448}, size={"shortest_edge": 448}
    )
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").exists()
    loaded = TimeSformerImageProcessor.from_pretrained(tmp_path)
    assert loaded.crop_size.height == 448 and list(loaded.image_mean) == [0.45] * 3
    assert loaded.model_input_names == ["pixel_values"]


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
    expected = (
        rf"frame_sampling='{frame_sampling}'.*pass frame_sampling='kinetics'.*--frame-sampling kinetics"
    )
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


def test_post_process_video_classification_single_multi_label_and_regression():
    from types import SimpleNamespace

    from timesformer_hf import TimeSformerVideoProcessor

    processor = TimeSformerVideoProcessor()
    id2label = {0: "run", 1: "sit", 2: "jump"}
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]])  # two views of one video
    single = SimpleNamespace(problem_type="single_label_classification", id2label=id2label)
    [video] = processor.post_process_video_classification(logits, single, num_views=2, top_k=2)
    expected = logits.softmax(-1).mean(0)
    assert [p["label"] for p in video["predictions"]] == ["jump", "run"]
    assert video["predictions"][0]["score"] == pytest.approx(float(expected[2]))

    multi = SimpleNamespace(problem_type="multi_label_classification", id2label=id2label)
    videos = processor.post_process_video_classification(logits, multi, threshold=0.6)
    assert [[p["label"] for p in v["predictions"]] for v in videos] == [["run", "jump"], ["jump"]]
    assert videos[0]["predictions"][0]["score"] == pytest.approx(float(torch.tensor(2.0).sigmoid()))

    regression = SimpleNamespace(problem_type="regression", id2label={0: "LABEL_0"})
    values = processor.post_process_video_classification(
        torch.tensor([[1.5], [2.5]]), regression, num_views=2
    )
    assert values == [{"value": 2.0}]


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
