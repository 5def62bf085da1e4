"""TimeSformer for the Hugging Face ecosystem.

Importing the package registers its config, models and processors with the `transformers` Auto classes:

```python
>>> import timesformer_hf  # noqa: F401
>>> from transformers import AutoModelForVideoClassification
>>> model = AutoModelForVideoClassification.from_pretrained("path/to/converted-repo")
```
"""

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

# Some top-level processor Auto classes are placeholders when torchvision is missing; these are the real ones.
from transformers.models.auto.image_processing_auto import AutoImageProcessor
from transformers.models.auto.video_processing_auto import AutoVideoProcessor

from .configuration_timesformer import TimeSformerConfig
from .image_processing_timesformer import TimeSformerImageProcessor, average_view_scores
from .modeling_timesformer import (
    TimeSformerForVideoClassification,
    TimeSformerModel,
    TimeSformerModelOutput,
    TimeSformerPreTrainedModel,
    TimeSformerVideoClassifierOutput,
)
from .video import VideoDecodeError, VideoMetadata, probe_video, read_video
from .video_processing_timesformer import TimeSformerVideoProcessor

__version__ = "0.1.0"

AutoConfig.register(TimeSformerConfig.model_type, TimeSformerConfig, exist_ok=True)
AutoModel.register(TimeSformerConfig, TimeSformerModel, exist_ok=True)
AutoModelForVideoClassification.register(TimeSformerConfig, TimeSformerForVideoClassification, exist_ok=True)
# one torch implementation serves whichever backend `AutoImageProcessor` asks for
AutoImageProcessor.register(
    TimeSformerConfig,
    image_processor_classes={"torchvision": TimeSformerImageProcessor, "pil": TimeSformerImageProcessor},
    exist_ok=True,
)
AutoVideoProcessor.register(TimeSformerConfig, TimeSformerVideoProcessor, exist_ok=True)

# Saved repos carry `auto_map` and these modules, so they load with `trust_remote_code=True` anywhere.
TimeSformerConfig.register_for_auto_class()
TimeSformerModel.register_for_auto_class("AutoModel")
TimeSformerForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")
TimeSformerImageProcessor.register_for_auto_class("AutoImageProcessor")
TimeSformerVideoProcessor.register_for_auto_class("AutoVideoProcessor")

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
    "average_view_scores",
    "probe_video",
    "read_video",
]
