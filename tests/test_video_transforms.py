"""video_transforms: batched resize, crops and normalisation of whole videos, and the helper threads they run on."""

import threading
import time

import pytest
import torch
from conftest import smooth_video

from timesformer_hf import TimeSformerImageProcessor
from timesformer_hf.video_transforms import _map_on_threads, resize_video, spatial_crop_offsets


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
