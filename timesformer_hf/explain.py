"""Where and when a TimeSformer looks: attention rollout and class-specific relevance maps of a video.

Both functions return, for each video, a `(frames, grid_h, grid_w)` map over the patches of the model's input
frames: how much the final CLS token (the feature the classifier reads) draws from each patch of each frame.

- [`attention_rollout`] (Abnar & Zuidema 2020): the attention weights of every block, heads fused, the residual
  path added (`A + I`, rows renormalised), multiplied through all blocks. Class-agnostic.
- [`relevance`] (after Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability"): the same rollout of
  gradient-weighted attention `mean_heads((dy/dA * A)^+)` for the logit `y` of a target class. Class-specific.

How the token-mixing matrix of a block is built, in the model's token order `[CLS, p0t0, p0t1, ..., p1t0, ...]`
(patch-major, time-minor):
- divided space-time: two steps. The temporal attention mixes the `T` tokens of each patch position (the CLS token
  takes no part: its row is the identity); the spatial attention mixes each frame's `1 + N` tokens, where the CLS
  token of frame `t` is a copy of the CLS token, and the model averages the `T` copies' outputs back into one: the
  CLS row is the mean over frames of each frame's CLS row. The block is the spatial step after the temporal one.
- joint space-time: one attention over all `1 + N*T` tokens.
- space-only: every frame on its own (`1 + N` tokens), the frames' final CLS tokens averaged.
The linear maps between attentions (`temporal_dense`, the output projections, the MLP) act on each token alone,
so in token space they are the identity, as in the standard rollout; the residual paths are the `+ I`.

Only the CLS row of the product is needed, so it is propagated as a vector from the last block to the first: the
cost is one forward pass with `output_attentions=True` (which runs eager attention for that call, whatever the
model's `attn_implementation`), plus one backward pass for `relevance`. Maps are computed in float32 on the
model's device, for a model in any dtype.

Example:

```python
>>> import torch
>>> from timesformer_hf import TimeSformerConfig, TimeSformerForVideoClassification
>>> from timesformer_hf.explain import attention_rollout, relevance, upsample

>>> config = TimeSformerConfig(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=2,
...                            num_attention_heads=4, intermediate_size=64, num_labels=3)
>>> model = TimeSformerForVideoClassification(config).eval()
>>> video = torch.randn(2, 4, 3, 32, 48)  # (batch, frames, channels, height, width)
>>> attention_rollout(model, video).shape  # (batch, frames, grid_h, grid_w)
torch.Size([2, 4, 4, 6])
>>> maps = relevance(model, video, target=1)
>>> upsample(maps, video.shape[-2:]).shape
torch.Size([2, 4, 32, 48])

```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .configuration_timesformer import to_pair
from .errors import InputError

__all__ = [
    "HEAD_FUSIONS",
    "METHODS",
    "VideoExplanation",
    "attention_rollout",
    "explain_video",
    "read_clip",
    "relevance",
    "upsample",
]

HEAD_FUSIONS = ("mean", "max", "min")
METHODS = {"relevance": "relevance", "rollout": "attention rollout"}


def _forward(model: nn.Module, pixel_values: torch.Tensor) -> tuple[Any, tuple[int, int]]:
    """The model's outputs with attention weights for `pixel_values` on its device, and the patch grid."""
    if model.training:
        raise InputError(
            "The model is in training mode (dropout would change the attention weights): call model.eval() first."
        )
    if pixel_values.ndim != 5:
        raise InputError(
            "pixel_values must have shape (batch, frames, channels, height, width), got a tensor of shape "
            f"{tuple(pixel_values.shape)}."
        )
    patch_height, patch_width = to_pair(model.config.patch_size)
    grid = (pixel_values.shape[-2] // patch_height, pixel_values.shape[-1] // patch_width)
    pixel_values = pixel_values.to(next(model.parameters()).device)
    if torch.is_grad_enabled():
        pixel_values = pixel_values.float().requires_grad_()  # the attention weights then require grad too
    return model(pixel_values=pixel_values, output_attentions=True, return_dict=True), grid


def _propagate(
    row: torch.Tensor, weights: torch.Tensor, row_sums: torch.Tensor | None = None
) -> torch.Tensor:
    """`row @ D^-1 (I + weights)` for rows `(B', S)` and weights `(B', S, S)`, where `D` holds the row sums of
    `I + weights` (or `row_sums`, `(B', S)`, when given)."""
    row = row / (1.0 + weights.sum(-1) if row_sums is None else row_sums)
    return row + torch.einsum("bs,bst->bt", row, weights)


def _through_temporal(row: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Through a divided block's temporal step: weights `(B*N, T, T)` mix each patch position's frames."""
    batch_size, num_frames = row.shape[0], weights.shape[-1]
    patches = _propagate(row[:, 1:].reshape(-1, num_frames), weights)  # (B*N, T): patch-major, time-minor
    return torch.cat([row[:, :1], patches.reshape(batch_size, -1)], dim=1)


def _through_spatial(row: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Through a divided block's spatial step: weights `(B*T, 1+N, 1+N)`, one frame each, whose CLS rows are
    averaged into the CLS row of the token-space matrix (the model averages the CLS copies' outputs)."""
    batch_size = row.shape[0]
    num_frames, num_tokens = weights.shape[0] // batch_size, weights.shape[-1]
    # Row entries of the CLS token go to every frame's copy with weight 1/T: `sum_t u_t A_t` then gives the
    # token-space product, and the CLS outputs of the frames add up back into one.
    cls = (row[:, :1] / num_frames).expand(-1, num_frames)  # (B, T)
    patches = row[:, 1:].reshape(batch_size, num_tokens - 1, num_frames)  # (B, N, T)
    frames = torch.cat([cls.unsqueeze(-1), patches.transpose(1, 2)], dim=2)  # (B, T, 1+N)
    frames = frames.reshape(-1, num_tokens)
    # the CLS row of the token-space matrix is the mean of the frames' CLS rows, and so is its sum
    row_sums = (1.0 + weights.sum(-1)).view(batch_size, num_frames, num_tokens)
    row_sums[:, :, 0] = row_sums[:, :, 0].mean(1, keepdim=True)
    frames = _propagate(frames, weights, row_sums.view(-1, num_tokens))
    frames = frames.view(batch_size, num_frames, num_tokens)
    patches = frames[:, :, 1:].transpose(1, 2).reshape(batch_size, -1)  # back to patch-major
    return torch.cat([frames[:, :, 0].sum(1, keepdim=True), patches], dim=1)


def _cls_row_maps(
    attention_type: str,
    spatial: Sequence[torch.Tensor],
    temporal: Sequence[torch.Tensor] | None,
    num_videos: int,
    num_frames: int,
    grid: tuple[int, int],
) -> torch.Tensor:
    """The CLS row of the product of every block's `D^-1 (I + A)` (last block first), as `(B, T, h, w)` maps.

    `spatial` (and `temporal` for divided blocks) are the per-layer weights, heads fused, in float32.
    """
    if attention_type == "space_only":  # each frame on its own; the final CLS token is the frames' mean
        row = spatial[0].new_zeros(num_videos * num_frames, spatial[0].shape[-1])
        row[:, 0] = 1.0 / num_frames
        for weights in reversed(spatial):
            row = _propagate(row, weights)
        return row[:, 1:].reshape(num_videos, num_frames, *grid)
    row = spatial[0].new_zeros(num_videos, 1 + grid[0] * grid[1] * num_frames)
    row[:, 0] = 1.0
    for layer in reversed(range(len(spatial))):
        if attention_type == "divided_space_time":  # the block is the spatial step after the temporal one
            row = _through_temporal(_through_spatial(row, spatial[layer]), temporal[layer])
        else:
            row = _propagate(row, spatial[layer])
    maps = row[:, 1:].reshape(num_videos, grid[0] * grid[1], num_frames).transpose(1, 2)
    return maps.reshape(num_videos, num_frames, *grid)


def _fuse_heads(weights: torch.Tensor, head_fusion: str, discard_ratio: float) -> torch.Tensor:
    """`(B', heads, S, S)` weights -> `(B', S, S)` float32, the smallest `discard_ratio` of each row set to 0."""
    weights = weights.float()
    fused = {"mean": weights.mean, "max": weights.amax, "min": weights.amin}[head_fusion](dim=1)
    count = int(fused.shape[-1] * discard_ratio)
    if count == 0:
        return fused
    smallest = fused.topk(count, dim=-1, largest=False).indices
    return fused.scatter(-1, smallest, 0.0)


@torch.no_grad()
def attention_rollout(
    model: nn.Module, pixel_values: torch.Tensor, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """
    Attention rollout: how much the final CLS token draws from each patch of each input frame.

    Every attention matrix has its heads fused (`head_fusion`: `"mean"`, `"max"` or `"min"`), the smallest
    `discard_ratio` of the weights of each row set to zero, the identity added for the residual path and its rows
    renormalised; the CLS row of the product over all blocks is returned (see the module docstring for the token
    mixing of divided, joint and space-only blocks). The maps and the CLS token's own share sum to 1.

    Args:
        model: A `TimeSformerForVideoClassification` or `TimeSformerModel`, in eval mode, any device and dtype.
        pixel_values: `(batch, frames, channels, height, width)` frames, as the model takes them.
        head_fusion: How the heads of each attention are combined.
        discard_ratio: Fraction of each attention row dropped (the weakest links), in `[0, 1)`.

    Returns:
        `(batch, frames, grid_h, grid_w)` float32 maps on the model's device, frames in input order.

    Example:

    ```python
    >>> maps = attention_rollout(model, pixel_values, head_fusion="max", discard_ratio=0.9)  # doctest: +SKIP
    >>> maps.shape  # 8 frames of 224x224, patch 16  # doctest: +SKIP
    torch.Size([1, 8, 14, 14])
    ```
    """
    if head_fusion not in HEAD_FUSIONS:
        raise InputError(f"head_fusion must be one of {', '.join(HEAD_FUSIONS)}, got {head_fusion!r}.")
    if not 0.0 <= discard_ratio < 1.0:
        raise InputError(f"discard_ratio must be in [0, 1) (a fraction of each row), got {discard_ratio}.")
    outputs, grid = _forward(model, pixel_values)

    def fuse(weights: torch.Tensor) -> torch.Tensor:
        return _fuse_heads(weights, head_fusion, discard_ratio)

    temporal = outputs.temporal_attentions
    return _cls_row_maps(
        model.config.attention_type,
        [fuse(weights) for weights in outputs.attentions],
        None if temporal is None else [fuse(weights) for weights in temporal],
        pixel_values.shape[0],
        pixel_values.shape[1],
        grid,
    )


def _gradient_weighted(gradient: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """`mean_heads((gradient * weights)^+)` with each row rescaled to sum to 1 (or 0): `(B', S, S)` float32."""
    weighted = (gradient.float() * weights.detach().float()).clamp(min=0).mean(1)
    row_sums = weighted.sum(-1, keepdim=True)
    return torch.where(row_sums > 0, weighted / row_sums.clamp(min=torch.finfo(torch.float32).tiny), 0.0)


def _targets(target: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """One class index per video: the top prediction by default."""
    if target is None:
        return logits.argmax(-1)
    targets = torch.as_tensor(target, device=logits.device).long().reshape(-1)
    num_videos, num_labels = logits.shape
    if len(targets) not in (1, num_videos):
        raise InputError(f"target must be one class index, or one per video ({num_videos}), got {target}.")
    if ((targets < 0) | (targets >= num_labels)).any():
        raise InputError(f"target must be a class index in [0, {num_labels}), got {target}.")
    return targets.expand(num_videos)


def relevance(
    model: nn.Module, pixel_values: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None = None
) -> torch.Tensor:
    """
    Class-specific relevance of each patch of each input frame: a rollout of gradient-weighted attention.

    For the logit `y` of the `target` class, every attention matrix `A` becomes `mean_heads((dy/dA * A)^+)` as in
    Chefer et al. 2021, its rows rescaled to sum to 1 (rows without relevance stay zero), and these are rolled out
    as [`attention_rollout`] does. Chefer's own accumulation `R = R + A R` instead lets the size of the gradient
    weigh the attention against the residual path, so multiplying the logits by a constant changes the map's
    shape; with rows rescaled it does not, and on the demo model the map finds the moving bar (test_explain.py).
    One forward and one backward pass; no parameter gets a gradient.

    Args:
        model: A `TimeSformerForVideoClassification` in eval mode, any device and dtype.
        pixel_values: `(batch, frames, channels, height, width)` frames, as the model takes them.
        target: The class to explain: an index for every video, one index per video, or `None` for each video's
            top prediction.

    Returns:
        `(batch, frames, grid_h, grid_w)` float32 maps on the model's device, frames in input order.

    Example:

    ```python
    >>> maps = relevance(model, pixel_values, target=model.config.label2id["right_2"])  # doctest: +SKIP
    ```
    """
    with torch.enable_grad():
        outputs, grid = _forward(model, pixel_values)
        logits = getattr(outputs, "logits", None)
        if logits is None:
            raise InputError(
                "relevance needs class scores: pass a TimeSformerForVideoClassification (a TimeSformerModel has no "
                "classifier), or use attention_rollout."
            )
        targets = _targets(target, logits)
        score = logits.gather(1, targets[:, None]).sum()
        temporal = list(outputs.temporal_attentions or ())
        attentions = [*outputs.attentions, *temporal]
        gradients = torch.autograd.grad(score, attentions, allow_unused=True, materialize_grads=True)
    weighted = [
        _gradient_weighted(gradient, weights) for gradient, weights in zip(gradients, attentions, strict=True)
    ]
    num_layers = len(outputs.attentions)
    return _cls_row_maps(
        model.config.attention_type,
        weighted[:num_layers],
        weighted[num_layers:] or None,
        pixel_values.shape[0],
        pixel_values.shape[1],
        grid,
    )


def upsample(maps: torch.Tensor, size: Sequence[int], mode: str = "bilinear") -> torch.Tensor:
    """
    `(batch, frames, grid_h, grid_w)` maps resized to the frame size `(height, width)`, each patch over its pixels.

    Example:

    ```python
    >>> upsample(torch.ones(1, 8, 14, 14), (224, 224)).shape
    torch.Size([1, 8, 224, 224])

    ```
    """
    align = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return nn.functional.interpolate(maps.float(), size=tuple(size), mode=mode, **align)


def read_clip(video: Any, processor: Any) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """The clip the processor samples by default: model input `(1, T, 3, H, W)`, the same frames as the model sees
    them for display (`(T, H, W, 3)` in `[0, 1]`), and a caption per frame (its index and time)."""
    from .video import VideoReader

    with VideoReader(video) as reader:
        indices = processor.sample_indices(reader.metadata.total_num_frames, reader.metadata.fps or None)
        frames, timestamps = reader.read(indices), reader.timestamps
    pixel_values = processor(frames, return_tensors="pt")["pixel_values"]
    shown = processor(frames, do_normalize=False, return_tensors="pt")["pixel_values"][0]
    captions = [f"frame {index} · {timestamps[index]:.2f} s" for index in indices.tolist()]
    return pixel_values, shown.permute(0, 2, 3, 1).clamp(0, 1).numpy(), captions


@dataclass
class VideoExplanation:
    """What [`explain_video`] found: the maps over the frames the model saw, and what it predicted."""

    frames: np.ndarray  # (frames, height, width, 3) in [0, 1], as the model saw them
    maps: np.ndarray  # (frames, height, width), upsampled from the patch grid
    captions: list[str]  # a frame's index and time
    predictions: list[dict[str, Any]]  # the top labels: {"label", "score"}, best first
    description: str  # "relevance for LABEL" or "attention rollout"

    @property
    def summary(self) -> str:
        """The top labels and their scores on one line."""
        return "   ".join(f"{p['label']} {p['score']:.1%}" for p in self.predictions)


def explain_video(
    model: nn.Module,
    processor: Any,
    video: Any,
    method: str = "relevance",
    target: int | None = None,
    top_k: int = 3,
) -> VideoExplanation:
    """
    Where a classifier looks in a video: the [`relevance`] map for class `target` (default: the top prediction) or
    the [`attention_rollout`], over the clip the processor samples by default, upsampled to the frames.

    Args:
        model: A `TimeSformerForVideoClassification`, e.g. from [`~timesformer_hf.inference.load_model`].
        processor: Its `TimeSformerVideoProcessor`.
        video: A path, bytes or `{"path", "bytes"}` of a video.
        method: `"relevance"` (class-specific) or `"rollout"` (the same for every class).
        target: The class index `relevance` explains.
        top_k: Predictions kept (scores as `classify` reports them; a multi-label model's best too).
    """
    if method not in METHODS:
        raise InputError(f"must be one of {', '.join(METHODS)}, got {method!r}.", argument="method")
    if target is not None and method != "relevance":
        raise InputError(
            "chooses the class of relevance; attention rollout is the same for all.", argument="target"
        )
    pixel_values, frames, captions = read_clip(video, processor)
    with torch.inference_mode():
        logits = model(pixel_values.to(model.device)).logits.cpu()
    # threshold 0 so that a multi-label model shows its best labels too
    predictions = processor.post_process_video_classification(
        logits, model.config, top_k=top_k, threshold=0.0
    )
    predictions = predictions[0]["predictions"][:top_k]
    if method == "relevance":
        maps = relevance(model, pixel_values, target=target)
        explained = predictions[0]["label"] if target is None else model.config.id2label[target]
        description = f"relevance for {explained}"
    else:
        maps = attention_rollout(model, pixel_values)
        description = METHODS[method]
    maps = upsample(maps, pixel_values.shape[-2:])[0].cpu().numpy()
    return VideoExplanation(frames, maps, captions, predictions, description)
