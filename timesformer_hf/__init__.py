"""TimeSformer for the Hugging Face ecosystem.

Importing the package registers its config, models and processors with the `transformers` Auto classes:

```python
>>> import timesformer_hf  # noqa: F401
>>> from transformers import AutoModelForVideoClassification
>>> model = AutoModelForVideoClassification.from_pretrained("path/to/converted-repo")
```

The public names load lazily; the registration itself imports `torch` and `transformers`' modeling code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "TimeSformerConfig": "configuration_timesformer",
    "TimeSformerForVideoClassification": "modeling_timesformer",
    "TimeSformerImageProcessor": "image_processing_timesformer",
    "TimeSformerModel": "modeling_timesformer",
    "TimeSformerModelOutput": "modeling_timesformer",
    "TimeSformerPreTrainedModel": "modeling_timesformer",
    "TimeSformerVideoClassifierOutput": "modeling_timesformer",
    "TimeSformerVideoProcessor": "video_processing_timesformer",
    "VideoDecodeError": "video",
    "VideoMetadata": "video",
    "VideoReader": "video",
    "average_view_scores": "image_processing_timesformer",
    "probe_video": "video",
    "read_video": "video",
}
__all__ = [
    "TimeSformerConfig",
    "TimeSformerForVideoClassification",
    "TimeSformerImageProcessor",
    "TimeSformerModel",
    "TimeSformerModelOutput",
    "TimeSformerPreTrainedModel",
    "TimeSformerVideoClassifierOutput",
    "TimeSformerVideoProcessor",
    "VideoDecodeError",
    "VideoMetadata",
    "VideoReader",
    "average_view_scores",
    "probe_video",
    "read_video",
]

if TYPE_CHECKING:
    from .configuration_timesformer import TimeSformerConfig
    from .image_processing_timesformer import TimeSformerImageProcessor, average_view_scores
    from .modeling_timesformer import (
        TimeSformerForVideoClassification,
        TimeSformerModel,
        TimeSformerModelOutput,
        TimeSformerPreTrainedModel,
        TimeSformerVideoClassifierOutput,
    )
    from .video import VideoDecodeError, VideoMetadata, VideoReader, probe_video, read_video
    from .video_processing_timesformer import TimeSformerVideoProcessor


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


from .registration import register_auto_classes  # noqa: E402

register_auto_classes()
