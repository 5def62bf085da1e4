"""TimeSformer configuration."""

import os
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .errors import InputError

ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")
# Configs that load as this one with the same weights: `transformers.TimesformerConfig` has the same fields.
COMPATIBLE_MODEL_TYPES = ("timesformer",)


def classifier_num_labels(config: PreTrainedConfig) -> int | None:
    """The label count of a repo saved by a classification model (its `architectures`), else `None`."""
    is_classifier = any(name.endswith("Classification") for name in config.architectures or ())
    return config.num_labels if is_classifier else None


def is_multi_label_model(config: PreTrainedConfig) -> bool:
    """Whether a model config is multi-label (`problem_type="multi_label_classification"`): its scores are the
    sigmoid of the logits, one per label, not a softmax over the labels."""
    return getattr(config, "problem_type", None) == "multi_label_classification"


def to_pair(value: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    """`224 -> (224, 224)`; `(h, w)` is returned as a tuple."""
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))


@strict
class TimeSformerConfig(PreTrainedConfig):
    r"""
    Configuration of a TimeSformer video transformer (Bertasius et al., ICML 2021).

    The defaults give the released base model: ViT-B/16 (hidden 768, 12 layers, 12 heads), 8 frames of 224x224 and
    divided space-time attention. Every field of `transformers.TimesformerConfig` is accepted, so configs saved by
    either library load in the other.

    Args:
        image_size (`int` or `(height, width)`, defaults to 224):
            Frame size the position embeddings were trained for, a multiple of `patch_size` (checked when the model
            is built). Other sizes work at run time (the embeddings are resized with nearest interpolation, as the
            original).
        patch_size (`int` or `(height, width)`, defaults to 16):
            Size of the square (or rectangular) patches.
        num_channels (`int`, defaults to 3):
            Channels of the input frames.
        num_frames (`int`, defaults to 8):
            Frame count the time embeddings were trained for. Other counts work at run time.
        hidden_size (`int`, defaults to 768):
            Width of the transformer.
        num_hidden_layers (`int`, defaults to 12):
            Depth.
        num_attention_heads (`int`, defaults to 12):
            Heads of every attention layer; must divide `hidden_size` (checked when the model is built).
        intermediate_size (`int`, defaults to 3072):
            Hidden width of the MLPs.
        hidden_act (`str`, defaults to `"gelu"`):
            Activation of the MLPs.
        hidden_dropout_prob (`float`, defaults to 0.0):
            Dropout on embeddings, projections and MLP outputs.
        attention_probs_dropout_prob (`float`, defaults to 0.0):
            Dropout on attention weights.
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the truncated normal initialiser.
        layer_norm_eps (`float`, defaults to 1e-6):
            Epsilon of the LayerNorms.
        qkv_bias (`bool`, defaults to `True`):
            Whether the query, key and value projections have a bias.
        attention_type (`str`, defaults to `"divided_space_time"`):
            One of `"divided_space_time"` (temporal then spatial attention in every block), `"joint_space_time"`
            (one attention over all tokens of the clip) or `"space_only"` (frames are independent images whose
            features are averaged).
        drop_path_rate (`float`, defaults to 0.0):
            Stochastic depth rate, growing linearly to this value over the blocks.
        chunk_size_feed_forward (`int`, defaults to 1024):
            On CPU in fp32, the MLPs process at most this many tokens (over batch and sequence) at a time: their
            `(tokens, intermediate_size)` activation stays small enough (12.6 MB for the base model) for the allocator
            to reuse it instead of page-faulting fresh memory in at every layer. 0 processes all tokens at once. The
            results equal the unchunked ones up to floating-point rounding. In bf16 the MLPs run whole: on a CPU with
            AMX, chunks made the base model 13% slower.

    Example:

    ```python
    >>> from timesformer_hf import TimeSformerConfig, TimeSformerForVideoClassification

    >>> config = TimeSformerConfig(num_frames=16, image_size=448, num_labels=400)
    >>> model = TimeSformerForVideoClassification(config)
    ```
    """

    model_type = "timesformer_hf"

    image_size: int | list[int] | tuple[int, int] = 224
    patch_size: int | list[int] | tuple[int, int] = 16
    num_channels: int = 3
    num_frames: int = 8
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    attention_type: str = "divided_space_time"
    drop_path_rate: float | int = 0  # an int by default so `transformers.TimesformerConfig` loads it
    chunk_size_feed_forward: int = 1024

    def __post_init__(self, **kwargs):
        self._check_architecture()
        super().__post_init__(**kwargs)

    def _check_architecture(self) -> None:
        """Raise a `ValueError` naming the field when a value is invalid on its own.

        Constraints between fields (`hidden_size` and `num_attention_heads`, `image_size` and `patch_size`) are
        checked when the model is built, as `transformers` does, so that a config can be written field by field.
        """
        if self.attention_type not in ATTENTION_TYPES:
            raise InputError(
                f"Unknown attention_type {self.attention_type!r}: use one of {', '.join(ATTENTION_TYPES)}."
            )
        if self.chunk_size_feed_forward < 0:
            raise InputError(
                f"chunk_size_feed_forward must be 0 (no chunking) or a positive token count, got "
                f"{self.chunk_size_feed_forward}."
            )
        for name in ("image_size", "patch_size"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)) and len(value) != 2:
                raise InputError(f"{name} must be an int or a (height, width) pair, got {value!r}.")
            if min(to_pair(value)) <= 0:
                raise InputError(f"{name} must be positive, got {value!r}.")
        sizes = ("num_frames", "num_attention_heads", "hidden_size", "num_hidden_layers", "intermediate_size")
        for name in (*sizes, "num_channels"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}.")

    @classmethod
    def get_config_dict(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """As `PreTrainedConfig.get_config_dict`, with a `transformers` TimeSformer config read as this one.

        `from_pretrained` then loads a `model_type="timesformer"` repo without warning about the model type.
        """
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") in COMPATIBLE_MODEL_TYPES:
            config_dict = {**config_dict, "model_type": cls.model_type}
        return config_dict, kwargs

    @property
    def patch_grid(self) -> tuple[int, int]:
        """Patches per column and per row at `image_size`."""
        (height, width), (patch_height, patch_width) = to_pair(self.image_size), to_pair(self.patch_size)
        return (height // patch_height, width // patch_width)


__all__ = ["TimeSformerConfig"]
