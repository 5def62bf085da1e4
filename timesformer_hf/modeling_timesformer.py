"""TimeSformer: divided space-time attention for video (Bertasius, Wang and Torresani, ICML 2021).

Faithful to the original `vit.py`: the same tokens, the same order of operations and the same parameters, so the
original checkpoints and the `facebook/timesformer-*` repos of `transformers` load and give the same numbers. Unlike
`transformers.TimesformerModel`, the frame count and patch grid are read from the input (the time and position
embeddings are resized as the original does), `space_only` averages frames into one prediction per video, and the
attention runs through the `transformers` attention interface (eager, sdpa, flash, flex).

Token layout of a clip (divided and joint attention): `[CLS, p0t0, p0t1, ..., p0t(T-1), p1t0, ...]`, i.e.
`(batch, 1 + num_patches * num_frames, hidden)` patch-major and time-minor, as the original `b (h w t) d`.
`space_only` runs each frame as an image: `(batch * num_frames, 1 + num_patches, hidden)`.
"""

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel, ViTConfig, ViTForImageClassification, ViTModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_timesformer import TimeSformerConfig, classifier_num_labels, to_pair
from .errors import InputError

logger = logging.get_logger(__name__)


@dataclass
class TimeSformerModelOutput(BaseModelOutputWithPooling):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
        Tokens after the final LayerNorm: `1 + num_patches * num_frames` of them (divided and joint attention) or
        `1 + num_patches` averaged over frames (`space_only`).
    pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        The CLS token of `last_hidden_state`, the feature the classifier reads.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True`):
        The embeddings and the output of every layer, before the final LayerNorm, in the layout the layers use:
        `(batch_size, 1 + num_patches * num_frames, hidden_size)`, or `(batch_size * num_frames, 1 + num_patches,
        hidden_size)` for `space_only`.
    attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
        Spatial attention weights of every layer (joint attention: the weights over all tokens):
        `(batch_size * num_frames, num_heads, 1 + num_patches, 1 + num_patches)` for divided and space-only,
        `(batch_size, num_heads, 1 + num_patches * num_frames, 1 + num_patches * num_frames)` for joint.
    temporal_attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
        Temporal attention weights of every layer of a divided model:
        `(batch_size * num_patches, num_heads, num_frames, num_frames)`, rows in patch order.
    """

    temporal_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class TimeSformerVideoClassifierOutput(ImageClassifierOutput):
    r"""
    loss (`torch.FloatTensor` of shape `(1,)`, *optional*, returned when `labels` is provided):
        Classification (or regression) loss.
    logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
        One row of scores per video, for every attention type.
    hidden_states, attentions, temporal_attentions:
        As in [`TimeSformerModelOutput`].
    """

    temporal_attentions: tuple[torch.FloatTensor, ...] | None = None


# ViT state-dict keys (`transformers` 5.x `layers.N...` layout, or the older `encoder.layer.N...` one) to ours.
_VIT_KEY_RENAMES = (
    (r"embeddings\.(cls_token|position_embeddings|patch_embeddings\.projection\.\w+)", r"embeddings.\1"),
    (
        r"(?:layers|encoder\.layer)\.(\d+)\.(layernorm_before|layernorm_after)\.(\w+)",
        r"encoder.layer.\1.\2.\3",
    ),
    (
        r"(?:layers|encoder\.layer)\.(\d+)\.attention\.(?:o_proj|output\.dense)\.(\w+)",
        r"encoder.layer.\1.attention.output.dense.\2",
    ),
    (
        r"(?:layers\.(\d+)\.mlp\.fc1|encoder\.layer\.(\d+)\.intermediate\.dense)\.(\w+)",
        r"encoder.layer.\1\2.intermediate.dense.\3",
    ),
    (
        r"(?:layers\.(\d+)\.mlp\.fc2|encoder\.layer\.(\d+)\.output\.dense)\.(\w+)",
        r"encoder.layer.\1\2.output.dense.\3",
    ),
    (r"layernorm\.(\w+)", r"layernorm.\1"),
)
_VIT_QKV = re.compile(
    r"(?:layers|encoder\.layer)\.(\d+)\.attention\.(?:attention\.)?(q|k|v|query|key|value)(?:_proj)?\.(\w+)"
)


def vit_to_timesformer_state_dict(
    vit_state: dict[str, torch.Tensor], attention_type: str
) -> dict[str, torch.Tensor]:
    """
    Map the weights of a `transformers` `ViTModel` onto a `TimeSformerModel` (keys without the `timesformer.` prefix).

    Query, key and value are fused into one `qkv` projection. For divided attention the temporal attention and its
    LayerNorm copy the spatial ones; `temporal_dense` and the time embeddings are left out (the caller sets them to
    zero), so the model starts as the image model applied to every frame, as the paper trained it. The ViT pooler is
    dropped. Unknown keys raise a `ValueError`.
    """
    state, qkv_parts, unknown = {}, {}, []
    for key, tensor in vit_state.items():
        if key.startswith("pooler."):
            continue
        if match := _VIT_QKV.fullmatch(key):
            layer, part, kind = match.groups()
            qkv_parts.setdefault((layer, kind), {})[part[0]] = tensor
            continue
        for pattern, replacement in _VIT_KEY_RENAMES:
            if re.fullmatch(pattern, key):
                state[re.sub(pattern, replacement, key)] = tensor
                break
        else:
            unknown.append(key)
    if unknown:
        raise InputError(f"Unexpected ViT weights, not mapped onto TimeSformer: {unknown}")
    for (layer, kind), parts in qkv_parts.items():
        state[f"encoder.layer.{layer}.attention.attention.qkv.{kind}"] = torch.cat([parts[p] for p in "qkv"])
    if attention_type == "divided_space_time":
        for key in list(state):
            if match := re.fullmatch(r"encoder\.layer\.(\d+)\.(layernorm_before|attention)\.(.+)", key):
                layer, module, rest = match.groups()
                temporal = "temporal_layernorm" if module == "layernorm_before" else "temporal_attention"
                state[f"encoder.layer.{layer}.{temporal}.{rest}"] = state[key].clone()
    return state


def _load_vit(path: str | os.PathLike) -> PreTrainedModel:
    """The `transformers` ViT saved in `path`, in the class its config names, so that every weight fits.

    A `ViTModel` is built with its pooler (the default, as on the Hub): the pooler is loaded, then left unused.
    """
    config = ViTConfig.from_pretrained(path)
    vit_class = ViTForImageClassification if classifier_num_labels(config) is not None else ViTModel
    return vit_class.from_pretrained(path, config=config)


def drop_path(hidden_states: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples (rows of dim 0) with probability `drop_prob`, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return hidden_states
    keep_prob = 1.0 - drop_prob
    shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
    mask = hidden_states.new_empty(shape).bernoulli_(keep_prob)
    return hidden_states * mask / keep_prob


class TimeSformerDropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return drop_path(hidden_states, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class TimeSformerPatchEmbeddings(nn.Module):
    """Frames `(batch, frames, channels, height, width)` to patch tokens `(batch * frames, grid_h * grid_w, hidden)`."""

    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        self.num_channels = config.num_channels
        self.patch_size = to_pair(config.patch_size)
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=self.patch_size, stride=self.patch_size
        )

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if pixel_values.ndim != 5:
            raise InputError(
                "pixel_values must have shape (batch, frames, channels, height, width), got a tensor of shape "
                f"{tuple(pixel_values.shape)}; for one clip of shape (frames, channels, height, width) use "
                "pixel_values.unsqueeze(0)."
            )
        batch_size, num_frames, num_channels, height, width = pixel_values.shape
        if num_channels != self.num_channels:
            raise InputError(
                f"pixel_values has {num_channels} channels at dim 2 but the model expects {self.num_channels}; "
                "frames must be laid out as (batch, frames, channels, height, width)."
            )
        patch_height, patch_width = self.patch_size
        if height % patch_height or width % patch_width:
            raise InputError(
                f"Frame size {height}x{width} is not a multiple of the patch size {patch_height}x{patch_width}: "
                "resize or crop the frames (the image processor does this)."
            )
        pixel_values = pixel_values.reshape(batch_size * num_frames, num_channels, height, width)
        pixel_values = pixel_values.to(self.projection.weight.dtype)
        embeddings = self.projection(pixel_values)  # (B*T, D, h, w)
        grid = (embeddings.shape[-2], embeddings.shape[-1])
        return embeddings.flatten(2).transpose(1, 2), grid  # (B*T, h*w, D)


class TimeSformerEmbeddings(nn.Module):
    """Patch, CLS, position and time embeddings; resizes position and time embeddings to the input (nearest)."""

    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        (height, width), (patch_height, patch_width) = to_pair(config.image_size), to_pair(config.patch_size)
        if height % patch_height or width % patch_width:
            fitting = (
                max(round(height / patch_height), 1) * patch_height,
                max(round(width / patch_width), 1) * patch_width,
            )
            raise InputError(
                f"image_size {(height, width)} is not a multiple of patch_size {(patch_height, patch_width)}: pass an "
                f"image_size divisible by the patch size to TimeSformerConfig, e.g. image_size={fitting}."
            )
        self.attention_type = config.attention_type
        self.grid = config.patch_grid
        self.patch_embeddings = TimeSformerPatchEmbeddings(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Parameter(
            torch.zeros(1, 1 + self.grid[0] * self.grid[1], config.hidden_size)
        )
        if self.attention_type != "space_only":
            self.time_embeddings = nn.Parameter(torch.zeros(1, config.num_frames, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def resized_position_embeddings(self, grid: tuple[int, int]) -> torch.Tensor:
        """Position embeddings `(1, 1 + h*w, D)` for a patch grid `(h, w)`, nearest-resized as the original."""
        if grid == self.grid:
            return self.position_embeddings
        cls_position, patch_position = self.position_embeddings[:, :1], self.position_embeddings[:, 1:]
        patch_position = patch_position.transpose(1, 2).reshape(1, -1, *self.grid)  # (1, D, H0, W0)
        patch_position = nn.functional.interpolate(patch_position, size=grid, mode="nearest")
        return torch.cat([cls_position, patch_position.flatten(2).transpose(1, 2)], dim=1)

    def resized_time_embeddings(self, num_frames: int) -> torch.Tensor:
        """Time embeddings `(1, T, D)` for `num_frames` frames, nearest-resized as the original."""
        if num_frames == self.time_embeddings.shape[1]:
            return self.time_embeddings
        time_embeddings = nn.functional.interpolate(
            self.time_embeddings.transpose(1, 2), size=num_frames, mode="nearest"
        )
        return time_embeddings.transpose(1, 2)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        batch_size, num_frames = pixel_values.shape[:2]
        patches, grid = self.patch_embeddings(pixel_values)  # (B*T, N, D)
        position_embeddings = self.resized_position_embeddings(grid)
        patches = patches + position_embeddings[:, 1:]
        cls_token = self.cls_token + position_embeddings[:, :1]  # (1, 1, D)

        if self.attention_type == "space_only":
            embeddings = torch.cat(
                [cls_token.expand(patches.shape[0], -1, -1), patches], dim=1
            )  # (B*T, 1+N, D)
            return self.dropout(embeddings), grid

        # (B*T, N, D) -> (B, N, T, D): patch-major, time-minor, then add the time embeddings
        num_patches, hidden_size = patches.shape[1:]
        patches = self.dropout(patches).view(batch_size, num_frames, num_patches, hidden_size).transpose(1, 2)
        patches = self.dropout(patches + self.resized_time_embeddings(num_frames).unsqueeze(1))
        patches = patches.reshape(batch_size, num_patches * num_frames, hidden_size)
        cls_token = self.dropout(cls_token).expand(batch_size, -1, -1)
        return torch.cat([cls_token, patches], dim=1), grid  # (B, 1 + N*T, D)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention on `(batch, heads, seq, head_dim)`; returns `(batch, seq, heads, head_dim)` and weights."""
    attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


def short_sequence_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """`eager_attention_forward` for a few tokens on CPU (the temporal attention): the scores transposed, `(batch,
    heads, keys, queries)`, so that the softmax over the keys runs along dim -2, which the CPU kernel vectorises
    across the queries (along dim -1 it loops over rows of a few elements). The same sums; no weights returned."""
    attn_weights = torch.matmul(key, query.transpose(-1, -2)) * scaling  # (B', heads, S_k, S_q)
    attn_weights = nn.functional.softmax(attn_weights, dim=-2, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    return torch.matmul(attn_weights.transpose(-1, -2), value).transpose(1, 2), None


class TimeSformerSelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection, through the `transformers` attention interface."""

    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            divisor = max(n for n in range(1, config.num_attention_heads + 1) if config.hidden_size % n == 0)
            raise InputError(
                f"hidden_size ({config.hidden_size}) is not a multiple of num_attention_heads "
                f"({config.num_attention_heads}): pass num_attention_heads to TimeSformerConfig, e.g. "
                f"num_attention_heads={divisor}."
            )
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_probs_dropout_prob
        self.is_causal = False
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False, num_queries: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(B', S, D)` tokens attend to each other; with `num_queries`, only the first `num_queries` of them query
        (all are keys and values): `(B', num_queries, D)` out."""
        batch_size, seq_length, hidden_size = hidden_states.shape  # (B', S, D)
        qkv = self.qkv(hidden_states).view(batch_size, seq_length, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B', heads, S, head_dim)
        query = query[:, :, :num_queries]  # (B', heads, Q, head_dim); the whole projection runs, for adapters

        implementation = self.config._attn_implementation
        # Only eager attention computes the weights. On CPU in bf16, sdpa's kernel is slower than two matmuls on
        # sequences of a few tokens, as the temporal attention over 8 or 16 frames (equal at 32; in fp32 it is faster).
        short_on_cpu = (
            implementation == "sdpa"
            and hidden_states.device.type == "cpu"
            and hidden_states.dtype != torch.float32
            and seq_length <= 16
        )
        attention_interface: Callable = eager_attention_forward
        if short_on_cpu and not output_attentions:
            attention_interface = short_sequence_attention_forward
        elif not output_attentions:
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
                implementation, eager_attention_forward
            )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            dropout=self.dropout if self.training else 0.0,
            scaling=self.scaling,
        )
        return attn_output.reshape(batch_size, query.shape[2], hidden_size), attn_weights


class TimeSformerSelfOutput(nn.Module):
    """Output projection of an attention layer (the residual is added by the layer)."""

    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(hidden_states))


class TimeSformerAttention(nn.Module):
    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        self.attention = TimeSformerSelfAttention(config)
        self.output = TimeSformerSelfOutput(config)

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False, num_queries: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, attn_weights = self.attention(hidden_states, output_attentions, num_queries)
        return self.output(context), attn_weights


class TimeSformerIntermediate(nn.Module):
    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.activation(self.dense(hidden_states)))


class TimeSformerOutput(nn.Module):
    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(hidden_states))


def _without_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """A context in which autocast is off on `device_type` (the meta device has no autocast)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


class TimeSformerLayer(GradientCheckpointingLayer):
    """One pre-norm block: divided (temporal, then spatial) or a single attention, then the MLP."""

    def __init__(self, config: TimeSformerConfig, layer_index: int) -> None:
        super().__init__()
        self.attention_type = config.attention_type
        self.layer_index = layer_index
        rate = config.drop_path_rate * layer_index / max(config.num_hidden_layers - 1, 1)  # linear decay rule
        self.drop_path = TimeSformerDropPath(rate)
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = TimeSformerAttention(config)
        if self.attention_type == "divided_space_time":
            self.temporal_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.temporal_attention = TimeSformerAttention(config)
            self.temporal_dense = nn.Linear(config.hidden_size, config.hidden_size)
            # set by `fuse_temporal_projection` (inference only), not saved
            self.register_buffer("fused_temporal_weight", None, persistent=False)
            self.register_buffer("fused_temporal_bias", None, persistent=False)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = TimeSformerIntermediate(config)
        self.output = TimeSformerOutput(config)
        self.chunk_size_feed_forward = config.chunk_size_feed_forward

    def forward(
        self,
        hidden_states: torch.Tensor,
        num_frames: int,
        output_attentions: bool = False,
        cls_token_only: bool = False,
    ) -> torch.Tensor:
        """The new tokens; `output_attentions` makes the attentions compute their weights (eager attention).

        `cls_token_only`: the new CLS token alone, `(B', 1, D)`; the other tokens are keys and values of its
        attention, but are not queried nor run through the MLP (what a classifier's last layer needs).
        """
        if self.attention_type == "divided_space_time":
            hidden_states = self._divided_attention(
                hidden_states, num_frames, output_attentions, cls_token_only
            )
        else:
            num_queries = 1 if cls_token_only else None
            attn_output, _ = self.attention(
                self.layernorm_before(hidden_states), output_attentions, num_queries
            )
            hidden_states = hidden_states[:, : attn_output.shape[1]] + self.drop_path(attn_output)
        return hidden_states + self.drop_path(self.feed_forward(hidden_states))

    def feed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """LayerNorm and MLP of `(B', S, D)` tokens; on CPU in fp32 in chunks of `chunk_size_feed_forward` tokens
        (bf16 GEMMs on AMX are faster whole)."""
        num_tokens = hidden_states.shape[0] * hidden_states.shape[1]
        chunk_size = self.chunk_size_feed_forward
        on_cpu_in_fp32 = hidden_states.device.type == "cpu" and hidden_states.dtype == torch.float32
        if not on_cpu_in_fp32 or not chunk_size or num_tokens <= chunk_size:
            return self.output(self.intermediate(self.layernorm_after(hidden_states)))
        tokens = hidden_states.reshape(num_tokens, hidden_states.shape[2])  # (B'*S, D)
        chunks = tokens.tensor_split(-(-num_tokens // chunk_size))  # even chunks of <= chunk_size tokens
        outputs = [self.output(self.intermediate(self.layernorm_after(chunk))) for chunk in chunks]
        return torch.cat(outputs).view_as(hidden_states)

    def fuse_temporal_projection(self) -> None:
        """Fold `temporal_attention.output.dense` and `temporal_dense` into one linear map, for inference.

        The two run one after the other with only dropout and drop-path between them, which are off in evaluation:
        weight `W_t @ W_o`, bias `W_t @ b_o + b_t`, one (D x D) GEMM per token instead of two. The fused weights are
        a snapshot (non-persistent buffers: not saved, moved by `.to()`); `train()` drops them.
        """
        dense, temporal_dense = self.temporal_attention.output.dense, self.temporal_dense
        dtype = torch.promote_types(dense.weight.dtype, torch.float32)  # (D, D) products in fp32 or more
        with torch.inference_mode(False), torch.no_grad(), _without_autocast(dense.weight.device.type):
            outer = temporal_dense.weight.to(dtype)
            self.fused_temporal_weight = (outer @ dense.weight.to(dtype)).to(dense.weight.dtype)
            bias = outer @ dense.bias.to(dtype) + temporal_dense.bias.to(dtype)
            self.fused_temporal_bias = bias.to(dense.bias.dtype)

    def train(self, mode: bool = True) -> "TimeSformerLayer":
        if mode:
            self._drop_fused_temporal_projection()  # training updates the two layers
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._drop_fused_temporal_projection()  # the weights are being replaced
        super()._load_from_state_dict(*args, **kwargs)

    def _drop_fused_temporal_projection(self) -> None:
        if self.attention_type == "divided_space_time":
            self.fused_temporal_weight = self.fused_temporal_bias = None

    def _runs_fused_temporal_projection(self) -> bool:
        """Whether the fused weights stand in for the two projections: fused, and both still plain linear layers
        (an adapter, e.g. LoRA, or any other module put in their place since runs instead)."""
        projections = (self.temporal_attention.output.dense, self.temporal_dense)
        return self.fused_temporal_weight is not None and all(isinstance(p, nn.Linear) for p in projections)

    def _divided_attention(
        self, hidden_states: torch.Tensor, num_frames: int, output_attentions: bool, cls_token_only: bool
    ) -> torch.Tensor:
        batch_size, seq_length, hidden_size = hidden_states.shape  # (B, 1 + N*T, D)
        num_patches = (seq_length - 1) // num_frames
        cls_token, patches = hidden_states[:, :1], hidden_states[:, 1:]  # (B, 1, D), (B, N*T, D)
        patches = self.add_temporal_attention(patches, num_frames, output_attentions)

        spatial = self.spatial_attention_inputs(cls_token, patches, num_frames)  # (B*T, 1+N, D)
        spatial, _ = self.attention(spatial, output_attentions, num_queries=1 if cls_token_only else None)
        spatial = self.drop_path(spatial).view(batch_size, num_frames, -1, hidden_size)  # (B, T, 1+N | 1, D)

        # The T outputs of the CLS token are averaged back into one; patches return to patch-major order.
        cls_token = cls_token + spatial[:, :, 0].mean(dim=1, keepdim=True)  # (B, 1, D)
        if cls_token_only:
            return cls_token
        spatial_patches = spatial[:, :, 1:].transpose(1, 2)  # (B, N, T, D)
        patches = patches.view(batch_size, num_patches, num_frames, hidden_size) + spatial_patches
        patches = patches.reshape(batch_size, num_patches * num_frames, hidden_size)
        return torch.cat([cls_token, patches], dim=1)

    def add_temporal_attention(
        self, patches: torch.Tensor, num_frames: int, output_attentions: bool = False
    ) -> torch.Tensor:
        """`patches` `(B, N*T, D)` plus the temporal attention over the T tokens of each patch position (the CLS
        token takes no part)."""
        batch_size, length, hidden_size = patches.shape
        temporal = self.temporal_layernorm(patches).view(-1, num_frames, hidden_size)  # (B*N, T, D)
        if not self._runs_fused_temporal_projection():
            temporal, _ = self.temporal_attention(temporal, output_attentions)
            temporal = self.temporal_dense(self.drop_path(temporal))
        else:  # output projection and temporal_dense in one (`fuse_temporal_projection`)
            temporal, _ = self.temporal_attention.attention(temporal, output_attentions)
            temporal = nn.functional.linear(temporal, self.fused_temporal_weight, self.fused_temporal_bias)
        return patches + temporal.view(batch_size, length, hidden_size)

    def spatial_attention_inputs(
        self, cls_token: torch.Tensor, patches: torch.Tensor, num_frames: int
    ) -> torch.Tensor:
        """The normalised tokens of the spatial attention, `(B*T, 1+N, D)`: every frame's N patches (`patches` is
        `(B, N*T, D)`, patch-major) after a copy of the CLS token `(B, 1, D)`."""
        batch_size, length, hidden_size = patches.shape
        spatial_cls = self.layernorm_before(cls_token).unsqueeze(1).expand(-1, num_frames, -1, -1)
        spatial_patches = self.layernorm_before(patches).unflatten(1, (length // num_frames, num_frames))
        spatial = torch.cat([spatial_cls, spatial_patches.transpose(1, 2)], dim=2)  # (B, T, 1+N, D)
        return spatial.view(batch_size * num_frames, -1, hidden_size)


class TimeSformerEncoder(nn.Module):
    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(
            [TimeSformerLayer(config, index) for index in range(config.num_hidden_layers)]
        )


class TimeSformerPreTrainedModel(PreTrainedModel):
    config_class = TimeSformerConfig
    config: TimeSformerConfig
    base_model_prefix = "timesformer"
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["TimeSformerEmbeddings", "TimeSformerLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    # What `output_hidden_states` / `output_attentions` return, recorded by hooks (see `TimeSformerModel.forward`):
    # the input and output of every layer, and the weights of the spatial (or joint) and temporal self-attentions
    # (".attention.attention" is no part of "temporal_attention.attention": transformers 5.11 matches substrings).
    _can_record_outputs = {
        "hidden_states": OutputRecorder(TimeSformerLayer, index=0),
        "attentions": OutputRecorder(TimeSformerSelfAttention, index=1, layer_name=".attention.attention"),
        "temporal_attentions": OutputRecorder(
            TimeSformerSelfAttention, index=1, layer_name="temporal_attention.attention"
        ),
    }

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """Save as `PreTrainedModel.save_pretrained`; with remote code on, `auto_map` names both model classes."""
        if self._auto_class is not None:
            module = TimeSformerModel.__module__.rsplit(".", 1)[-1]
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoModel": f"{module}.{TimeSformerModel.__name__}",
                "AutoModelForVideoClassification": f"{module}.{TimeSformerForVideoClassification.__name__}",
            }
        super().save_pretrained(save_directory, *args, **kwargs)

    def _returns_every_token(self, output_attentions: bool | None, output_hidden_states: bool | None) -> bool:
        """Whether a forward pass returns attentions or hidden states (the arguments, else the config's)."""
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        return bool(output_attentions or output_hidden_states)

    def fuse_temporal_projections(self) -> "TimeSformerPreTrainedModel":
        """Fold the two temporal projections of every divided layer into one linear map, for inference.

        One (D x D) GEMM per patch token and layer less (5.6% of the FLOPs at 8x224, 5.2% at HR 16x448), logits equal
        up to float rounding. The fused weights are a snapshot: fuse after merging adapters (LoRA) or editing weights
        in place, and again after; `train()` and `load_state_dict` drop the fusion, and a layer put in place of either
        projection (an adapter attached after fusing) runs unfused. They are not saved. While fused, the two layers
        (and hooks on them or on `temporal_attention`) do not run. Returns the model.

        Example:

        ```python
        >>> model = TimeSformerForVideoClassification.from_pretrained(repo).eval()  # doctest: +SKIP
        >>> model = model.fuse_temporal_projections()  # doctest: +SKIP
        ```
        """
        if self.training:
            raise RuntimeError("Fusing the temporal projections is for inference: call `model.eval()` first.")
        for module in self.modules():
            if isinstance(module, TimeSformerLayer) and module.attention_type == "divided_space_time":
                module.fuse_temporal_projection()
        return self

    def resize_embeddings(
        self, num_frames: int | None = None, image_size: int | tuple[int, int] | None = None
    ) -> None:
        """
        Resize the time and position embeddings to `num_frames` and `image_size` (nearest interpolation, what the
        forward pass does on the fly) and update the config, e.g. before fine-tuning an 8-frame model on 16 frames.

        Example:

        ```python
        >>> model.resize_embeddings(num_frames=16, image_size=448)  # doctest: +SKIP
        >>> model.config.num_frames, model.config.image_size  # doctest: +SKIP
        (16, 448)
        ```
        """
        embeddings, config = self.base_model.embeddings, self.config
        if image_size is not None:
            patch_height, patch_width = to_pair(config.patch_size)
            height, width = to_pair(image_size)
            if height % patch_height or width % patch_width:
                raise InputError(
                    f"image_size {image_size} is not a multiple of the patch size {config.patch_size}."
                )
            grid = (height // patch_height, width // patch_width)
            with torch.no_grad():
                resized = embeddings.resized_position_embeddings(grid).clone()
            embeddings.position_embeddings = nn.Parameter(resized)
            embeddings.grid = grid
            config.image_size = image_size
        if num_frames is not None:
            if num_frames < 1:
                raise InputError(f"num_frames must be at least 1, got {num_frames}.")
            if config.attention_type != "space_only":
                with torch.no_grad():
                    resized = embeddings.resized_time_embeddings(num_frames).clone()
                embeddings.time_embeddings = nn.Parameter(resized)
            config.num_frames = num_frames

    @classmethod
    def from_vit(
        cls,
        vit: "str | os.PathLike | PreTrainedModel",
        num_frames: int = 8,
        attention_type: str = "divided_space_time",
        **config_overrides,
    ) -> "TimeSformerPreTrainedModel":
        """
        Build a TimeSformer from an image ViT, as the paper initialised its models.

        `vit` is a `transformers` ViT (`ViTModel` or `ViTForImageClassification`) or a directory holding one. The
        spatial weights are copied, temporal attention starts as a copy of the spatial one, `temporal_dense` and the
        time embeddings start at zero: given `num_frames` copies of an image, the model returns the ViT's features.
        A classification head is newly initialised for `config_overrides` such as `num_labels` and `id2label`.

        Example:

        ```python
        >>> from timesformer_hf import TimeSformerForVideoClassification
        >>> model = TimeSformerForVideoClassification.from_vit("google/vit-base-patch16-224-in21k", num_labels=10)
        ```
        """
        source = vit if isinstance(vit, (str, os.PathLike)) else type(vit).__name__
        if isinstance(vit, (str, os.PathLike)):
            vit = _load_vit(vit)
        unused = ""
        if isinstance(getattr(vit, "classifier", None), nn.Linear):
            unused = f"; its classifier ({vit.config.num_labels} labels) is not used"
        vit = getattr(vit, "vit", vit)  # the encoder of a ViTForImageClassification
        vit_config = vit.config
        config = TimeSformerConfig(
            **{
                name: getattr(vit_config, name)
                for name in (
                    "image_size",
                    "patch_size",
                    "num_channels",
                    "hidden_size",
                    "num_hidden_layers",
                    "num_attention_heads",
                    "intermediate_size",
                    "hidden_act",
                    "layer_norm_eps",
                    "qkv_bias",
                )
            },
            num_frames=num_frames,
            attention_type=attention_type,
            **config_overrides,
        )
        model = cls(config)
        state = vit_to_timesformer_state_dict(vit.state_dict(), attention_type)
        base = model.base_model
        missing, unexpected = base.load_state_dict(state, strict=False)
        left_at_zero = {"embeddings.time_embeddings"} | {
            f"encoder.layer.{i}.temporal_dense.{kind}"
            for i in range(config.num_hidden_layers)
            for kind in ("weight", "bias")
        }
        if unexpected or set(missing) - left_at_zero:
            raise InputError(
                f"ViT weights do not fit: missing {sorted(set(missing) - left_at_zero)}, unexpected {unexpected}"
            )
        with torch.no_grad():
            for key in missing:
                base.get_parameter(key).zero_()
        logger.info(
            f"Initialised {cls.__name__} from the ViT {source}: spatial weights copied, temporal attention copied "
            f"from the spatial one, temporal projections and time embeddings at zero{unused}."
        )
        return model

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """ViT initialisation: truncated normal weights, zero biases, zero time embeddings (as the original)."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, TimeSformerEmbeddings):
            init.trunc_normal_(module.cls_token, std=std)
            init.trunc_normal_(module.position_embeddings, std=std)
            if module.attention_type != "space_only":
                init.zeros_(module.time_embeddings)
        if isinstance(module, TimeSformerLayer) and module.attention_type == "divided_space_time":
            # The original starts every temporal_fc but the first at zero, so blocks begin as image blocks.
            if module.layer_index > 0:
                init.zeros_(module.temporal_dense.weight)
                init.zeros_(module.temporal_dense.bias)


class TimeSformerModel(TimeSformerPreTrainedModel):
    """
    The bare TimeSformer: video clips in, tokens out.

    Example:

    ```python
    >>> import torch
    >>> from timesformer_hf import TimeSformerConfig, TimeSformerModel

    >>> model = TimeSformerModel(TimeSformerConfig(num_hidden_layers=2)).eval()
    >>> video = torch.randn(1, 8, 3, 224, 224)  # (batch, frames, channels, height, width)
    >>> outputs = model(video)
    >>> outputs.last_hidden_state.shape, outputs.pooler_output.shape
    (torch.Size([1, 1569, 768]), torch.Size([1, 768]))
    ```
    """

    # The classifier of a video-classification repo is left out on purpose (see `from_pretrained`)
    _keys_to_ignore_on_load_unexpected = [r"^classifier\."]

    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__(config)
        self.embeddings = TimeSformerEmbeddings(config)
        self.encoder = TimeSformerEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args, **kwargs):
        """As `PreTrainedModel.from_pretrained`; a video-classification repo gives its backbone, with one info line.

        Example:

        ```python
        >>> model = TimeSformerModel.from_pretrained("facebook/timesformer-base-finetuned-k400")  # doctest: +SKIP
        ```
        """
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if kwargs.get("output_loading_info") else loaded
        if (num_labels := classifier_num_labels(model.config)) is not None:
            logger.info(
                f"Loaded the backbone of {pretrained_model_name_or_path}; its classifier ({num_labels} labels) "
                "is not used."
            )
        return loaded

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings.projection

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cls_token_only: bool = False,
        **kwargs,
    ) -> TimeSformerModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
            Normalised frames, e.g. from [`TimeSformerVideoProcessor`]. The frame count and the size may differ from
            the config's (any multiple of the patch size).
        output_attentions (`bool`, *optional*):
            Return spatial and temporal attention weights (computed with eager attention for this call).
        output_hidden_states (`bool`, *optional*):
            Return the embeddings and the output of every layer.
        cls_token_only (`bool`, *optional*, defaults to `False`):
            Compute only what `pooler_output` needs: the last layer updates the CLS token alone (the patch tokens
            are its keys and values, but skip the MLP), about 5% less work at 8x224, same values;
            `last_hidden_state` is then `(batch_size, 1, hidden_size)`. Not with `output_attentions` or
            `output_hidden_states`, which need every token.
        """
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        if cls_token_only and self._returns_every_token(output_attentions, output_hidden_states):
            raise InputError(
                "cls_token_only=True computes the final CLS token alone: leave it out to get attentions or hidden "
                "states, which need every token."
            )
        # the temporal attention weights come with the spatial ones
        kwargs["output_temporal_attentions"] = (
            output_attentions and self.config.attention_type == "divided_space_time"
        )
        if output_hidden_states is not None:
            kwargs["output_hidden_states"] = output_hidden_states
        if return_dict is not None:
            kwargs["return_dict"] = return_dict
        return self._encode(
            pixel_values, output_attentions=output_attentions, cls_token_only=cls_token_only, **kwargs
        )

    @capture_outputs(tie_last_hidden_states=False)
    def _encode(
        self,
        pixel_values: torch.Tensor,
        output_attentions: bool = False,
        cls_token_only: bool = False,
        **kwargs,
    ) -> TimeSformerModelOutput:
        """Embeddings, layers and the final norm; the recorded outputs are added by `capture_outputs`."""
        batch_size, num_frames = pixel_values.shape[:2]
        hidden_states, _ = self.embeddings(pixel_values)
        last = len(self.encoder.layer) - 1
        for index, layer in enumerate(self.encoder.layer):
            hidden_states = layer(
                hidden_states, num_frames, output_attentions, cls_token_only and index == last
            )
        if cls_token_only:
            hidden_states = hidden_states[:, :1]  # (B', 1, D) already, but for a model without layers
        if self.config.attention_type == "space_only":
            # (B*T, 1+N, D) -> (B, 1+N, D): the frames are averaged before the final norm, as the original.
            hidden_states = hidden_states.view(batch_size, num_frames, *hidden_states.shape[1:]).mean(dim=1)
        sequence_output = self.layernorm(hidden_states)
        return TimeSformerModelOutput(last_hidden_state=sequence_output, pooler_output=sequence_output[:, 0])


class TimeSformerForVideoClassification(TimeSformerPreTrainedModel):
    """
    TimeSformer with a linear classifier on the CLS token: one row of logits per video.

    Example:

    ```python
    >>> import torch
    >>> from timesformer_hf import TimeSformerConfig, TimeSformerForVideoClassification

    >>> config = TimeSformerConfig(num_hidden_layers=2, num_labels=400)
    >>> model = TimeSformerForVideoClassification(config).eval()
    >>> logits = model(torch.randn(2, 8, 3, 224, 224)).logits
    >>> logits.shape
    torch.Size([2, 400])
    ```
    """

    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.timesformer = TimeSformerModel(config)
        self.classifier = (
            nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        )
        self.loss_function = video_classification_loss
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> TimeSformerVideoClassifierOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
            Normalised frames.
        labels (`torch.LongTensor` of shape `(batch_size,)` or `torch.FloatTensor`, *optional*):
            Class indices (single-label), multi-hot floats (multi-label) or targets (regression, `num_labels=1`).
        """
        loss_kwargs = {"num_items_in_batch": kwargs.pop("num_items_in_batch", None)}
        outputs = self.timesformer(
            pixel_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            cls_token_only=not self._returns_every_token(output_attentions, output_hidden_states),
            **kwargs,
        )
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **loss_kwargs)
        return TimeSformerVideoClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            temporal_attentions=outputs.temporal_attentions,
        )


def video_classification_loss(
    labels: torch.Tensor,
    logits: torch.Tensor,
    config: PreTrainedConfig,
    num_items_in_batch: torch.Tensor | int | None = None,
    **kwargs,
) -> torch.Tensor:
    """
    The loss of `config.problem_type` (inferred as `transformers` does when unset): mean squared error (regression),
    cross-entropy (single-label, ignoring `-100`) or binary cross-entropy on the logits (multi-label).

    With `num_items_in_batch`, which `Trainer` passes (the label count of all micro-batches of one optimizer step),
    the losses are summed and divided by it, so that gradient accumulation gives the gradients of the whole batch,
    for every problem type; otherwise their mean. Computed in float32.
    """
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    logits, labels = logits.float(), labels.to(logits.device)
    reduction = "mean" if num_items_in_batch is None else "sum"
    if config.problem_type == "regression":
        logits = logits.squeeze(-1) if num_labels == 1 else logits
        loss = nn.functional.mse_loss(logits, labels.float().reshape(logits.shape), reduction=reduction)
    elif config.problem_type == "single_label_classification":
        loss = nn.functional.cross_entropy(logits.view(-1, num_labels), labels.view(-1), reduction=reduction)
    elif config.problem_type == "multi_label_classification":
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), reduction=reduction)
    else:
        raise InputError(f"Unknown problem_type {config.problem_type!r}.")
    if num_items_in_batch is not None:
        loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device)
    return loss


__all__ = [
    "TimeSformerForVideoClassification",
    "TimeSformerModel",
    "TimeSformerModelOutput",
    "TimeSformerPreTrainedModel",
    "TimeSformerVideoClassifierOutput",
]
