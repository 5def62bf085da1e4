"""Registration of TimeSformer with the `transformers` Auto classes and for remote code (`import timesformer_hf`
does it)."""

from __future__ import annotations

import functools

__all__ = ["register_auto_classes"]


@functools.cache
def register_auto_classes() -> None:
    """Make `AutoConfig`, `AutoModel`, `AutoModelForVideoClassification`, `AutoImageProcessor` and
    `AutoVideoProcessor` know `timesformer_hf` repos, and make saved repos carry `auto_map` (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

    # Some top-level processor Auto classes are placeholders when torchvision is missing; these are the real ones.
    from transformers.models.auto.image_processing_auto import AutoImageProcessor
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor

    from .configuration_timesformer import TimeSformerConfig
    from .image_processing_timesformer import TimeSformerImageProcessor
    from .modeling_timesformer import TimeSformerForVideoClassification, TimeSformerModel
    from .video_processing_timesformer import TimeSformerVideoProcessor

    AutoConfig.register(TimeSformerConfig.model_type, TimeSformerConfig, exist_ok=True)
    AutoModel.register(TimeSformerConfig, TimeSformerModel, exist_ok=True)
    AutoModelForVideoClassification.register(
        TimeSformerConfig, TimeSformerForVideoClassification, exist_ok=True
    )
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
