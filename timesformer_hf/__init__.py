"""TimeSformer for the Hugging Face ecosystem.

Importing the package registers its config, models and processors with the `transformers` Auto classes:

```python
>>> import timesformer_hf  # noqa: F401
>>> from transformers import AutoModelForVideoClassification
>>> model = AutoModelForVideoClassification.from_pretrained("path/to/converted-repo")
```
"""

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from .configuration_timesformer import TimeSformerConfig
from .modeling_timesformer import (
    TimeSformerForVideoClassification,
    TimeSformerModel,
    TimeSformerModelOutput,
    TimeSformerPreTrainedModel,
    TimeSformerVideoClassifierOutput,
)

__version__ = "0.1.0"

AutoConfig.register(TimeSformerConfig.model_type, TimeSformerConfig, exist_ok=True)
AutoModel.register(TimeSformerConfig, TimeSformerModel, exist_ok=True)
AutoModelForVideoClassification.register(TimeSformerConfig, TimeSformerForVideoClassification, exist_ok=True)

# Saved repos carry `auto_map` and these modules, so they load with `trust_remote_code=True` anywhere.
TimeSformerConfig.register_for_auto_class()
TimeSformerModel.register_for_auto_class("AutoModel")
TimeSformerForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")

__all__ = [
    "TimeSformerConfig",
    "TimeSformerForVideoClassification",
    "TimeSformerModel",
    "TimeSformerModelOutput",
    "TimeSformerPreTrainedModel",
    "TimeSformerVideoClassifierOutput",
]
