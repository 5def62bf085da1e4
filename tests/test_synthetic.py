"""synthetic."""

import numpy as np
import pytest

from timesformer_hf.synthetic import (
    ACTION_LABELS,
    action_video,
    motion_labels,
    motion_video,
    write_motion_dataset,
    write_video,
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


def test_motion_dataset_refuses_to_mix_with_old_videos(tmp_path):
    write_motion_dataset(tmp_path, num_train_per_class=2, num_eval_per_class=1, num_frames=4, size=32)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_motion_dataset(tmp_path, num_train_per_class=1, num_eval_per_class=1, num_frames=4, size=32)
    write_motion_dataset(
        tmp_path, num_train_per_class=1, num_eval_per_class=1, num_frames=4, size=32, overwrite=True
    )
    assert len(list((tmp_path / "train").rglob("*.mp4"))) == 4
    assert len(list((tmp_path / "validation").rglob("*.mp4"))) == 4


def test_action_videos_show_the_actions_only_in_motion():
    still = action_video([], num_frames=8, size=32, rng=0)
    both = action_video(ACTION_LABELS, num_frames=8, size=32, rng=0)
    assert still.std(0).max() == 0  # nothing moves: every frame is the same
    assert both[:, :16].std(0).max() > 0 and both[:, 16:].std(0).max() > 0  # the bar moves, the square blinks
    with pytest.raises(ValueError, match="Unknown actions"):
        action_video(["dancing"])


def test_the_same_frames_give_the_same_file(tmp_path):
    # x264's lookahead made about 1 in 40 of these tiny videos differ between two runs: data sets and the models
    # trained on them (the demo's) must be reproducible
    rng = np.random.default_rng(0)
    videos = [motion_video(label, 8, 32, rng=rng) for label in motion_labels() for _ in range(40)]
    for index, frames in enumerate(videos):
        write_video(tmp_path / "a.mp4", frames)
        write_video(tmp_path / "b.mp4", frames)
        assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes(), index
