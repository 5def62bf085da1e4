"""Where labelled videos come from and how they become training clips.

- [`labels`][timesformer_hf.data.labels]: the one rule for label ids (natural order of the names), for every source;
- [`local`][timesformer_hf.data.local]: class-folder trees and CSV/JSON(L) lists, and the held-out validation split;
- [`sources`][timesformer_hf.data.sources]: [`VideoSource`], which reads any of those or a `datasets` data set;
- [`transforms`][timesformer_hf.data.transforms]: probing, the clip transform (the original augmentation) and the
  collator.
"""

from .labels import (
    class_label,
    encode_labels,
    flip_swapped_labels,
    is_fractional,
    is_multi_label,
    is_regression,
    multi_hot,
    natural_sorted,
    regression_targets,
)
from .local import (
    LABEL_SEPARATOR,
    VIDEO_EXTENSIONS,
    load_video_dataset,
    split_train_validation,
    video_folder_dataset,
    video_list_dataset,
)
from .sources import MissingSplitError, NamedVideos, VideoSource, video_names
from .transforms import VideoClipTransform, collate_videos, default_short_side_range, probe_videos

__all__ = [
    "LABEL_SEPARATOR",
    "VIDEO_EXTENSIONS",
    "MissingSplitError",
    "NamedVideos",
    "VideoClipTransform",
    "VideoSource",
    "class_label",
    "collate_videos",
    "default_short_side_range",
    "encode_labels",
    "flip_swapped_labels",
    "is_fractional",
    "is_multi_label",
    "is_regression",
    "load_video_dataset",
    "multi_hot",
    "natural_sorted",
    "probe_videos",
    "regression_targets",
    "split_train_validation",
    "video_folder_dataset",
    "video_list_dataset",
    "video_names",
]
