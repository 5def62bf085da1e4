"""TimeSformerImageProcessor: parity with transformers' PIL VideoMAE processor, inputs, save/load, post-processing."""

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import smooth_video
from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

from timesformer_hf import TimeSformerImageProcessor, TimeSformerVideoProcessor, average_view_scores


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


def test_normalization_values():
    video = np.full((2, 224, 224, 3), 255, dtype=np.uint8)
    pixel_values = TimeSformerImageProcessor()(video, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixel_values, torch.full_like(pixel_values, (1 - 0.45) / 0.225))


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


def test_multi_view_scores_of_a_multi_label_model_are_sigmoids():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, -1.0]])
    scores = average_view_scores(logits, num_views=3, multi_label=True)
    torch.testing.assert_close(scores, logits.sigmoid().mean(0, keepdim=True))
