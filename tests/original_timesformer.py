"""An independent, plain re-implementation of the ORIGINAL TimeSformer forward pass (facebookresearch `vit.py`).

It works directly on an original state dict (`cls_token`, `pos_embed`, `blocks.i.attn.qkv.weight`, ...) with
functional torch ops, following the original's token bookkeeping step by step, so the tests can check that the
converted model computes what the released weights define. Only the native frame count and image size are
supported (no embedding resizing) and inference only (no dropout, no drop path).
"""

import torch
import torch.nn.functional as F

LAYER_NORM_EPS = 1e-6


def _layer_norm(x: torch.Tensor, weights: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], weights[f"{name}.weight"], weights[f"{name}.bias"], LAYER_NORM_EPS)


def _linear(x: torch.Tensor, weights: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.linear(x, weights[f"{name}.weight"], weights.get(f"{name}.bias"))


def _attention(x: torch.Tensor, weights: dict[str, torch.Tensor], name: str, num_heads: int) -> torch.Tensor:
    """Multi-head self-attention of the original `Attention` module: fused qkv, softmax(q k^T * scale) v, proj."""
    batch, tokens, channels = x.shape
    head_dim = channels // num_heads
    qkv = (
        _linear(x, weights, f"{name}.qkv")
        .reshape(batch, tokens, 3, num_heads, head_dim)
        .permute(2, 0, 3, 1, 4)
    )
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = (q @ k.transpose(-2, -1)) * head_dim**-0.5
    out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, tokens, channels)
    return _linear(out, weights, f"{name}.proj")


def _mlp(x: torch.Tensor, weights: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return _linear(F.gelu(_linear(x, weights, f"{name}.fc1")), weights, f"{name}.fc2")


def _divided_block(
    x: torch.Tensor, weights: dict[str, torch.Tensor], name: str, batch: int, frames: int, num_heads: int
) -> torch.Tensor:
    """x: (B, 1 + N*T, D) with patch tokens ordered (n, t)."""
    dim = x.shape[-1]
    patches = x[:, 1:]  # (B, N*T, D)
    num_patches = patches.shape[1] // frames

    # Temporal attention: for each patch position, attend over its T tokens.
    xt = patches.reshape(batch * num_patches, frames, dim)
    res_temporal = _attention(
        _layer_norm(xt, weights, f"{name}.temporal_norm1"), weights, f"{name}.temporal_attn", num_heads
    )
    res_temporal = _linear(
        res_temporal.reshape(batch, num_patches * frames, dim), weights, f"{name}.temporal_fc"
    )
    xt = patches + res_temporal  # (B, N*T, D)

    # Spatial attention: for each frame, attend over the CLS token (a copy per frame) and its N patches.
    init_cls = x[:, :1]  # (B, 1, D)
    cls_per_frame = init_cls.repeat(1, frames, 1).reshape(batch * frames, 1, dim)
    xs = (
        xt.reshape(batch, num_patches, frames, dim)
        .permute(0, 2, 1, 3)
        .reshape(batch * frames, num_patches, dim)
    )
    xs = torch.cat([cls_per_frame, xs], dim=1)
    res_spatial = _attention(_layer_norm(xs, weights, f"{name}.norm1"), weights, f"{name}.attn", num_heads)

    cls_out = res_spatial[:, 0].reshape(batch, frames, dim).mean(dim=1, keepdim=True)  # (B, 1, D)
    res = res_spatial[:, 1:].reshape(batch, frames, num_patches, dim).permute(0, 2, 1, 3)
    res = res.reshape(batch, num_patches * frames, dim)

    x = torch.cat([init_cls, xt], dim=1) + torch.cat([cls_out, res], dim=1)
    return x + _mlp(_layer_norm(x, weights, f"{name}.norm2"), weights, f"{name}.mlp")


def _plain_block(
    x: torch.Tensor, weights: dict[str, torch.Tensor], name: str, num_heads: int
) -> torch.Tensor:
    x = x + _attention(_layer_norm(x, weights, f"{name}.norm1"), weights, f"{name}.attn", num_heads)
    return x + _mlp(_layer_norm(x, weights, f"{name}.norm2"), weights, f"{name}.mlp")


@torch.no_grad()
def original_forward(
    weights: dict[str, torch.Tensor], video: torch.Tensor, num_heads: int, attention_type: str
) -> torch.Tensor:
    """
    Logits of the original model for `video` of shape (B, C, T, H, W), the original's input layout.

    `weights` is an original state dict without the `model.` prefix.
    """
    batch, channels, frames, height, width = video.shape
    patch_weight = weights["patch_embed.proj.weight"]
    patch = patch_weight.shape[-1]
    dim = patch_weight.shape[0]
    depth = 1 + max(int(key.split(".")[1]) for key in weights if key.startswith("blocks."))

    # Patch embedding per frame: (B, C, T, H, W) -> (B*T, C, H, W) -> (B*T, N, D), frame-major batch.
    frames_2d = video.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
    x = F.conv2d(frames_2d, patch_weight, weights["patch_embed.proj.bias"], stride=patch)
    x = x.flatten(2).transpose(1, 2)
    num_patches = x.shape[1]

    cls = weights["cls_token"].expand(batch * frames, -1, -1)
    x = torch.cat([cls, x], dim=1) + weights["pos_embed"]  # (B*T, 1+N, D)

    if attention_type != "space_only":
        cls_tokens = x[:batch, 0].unsqueeze(1)  # the CLS of the first `batch` rows, as the original
        x = x[:, 1:].reshape(batch, frames, num_patches, dim).permute(0, 2, 1, 3)  # (B, N, T, D)
        x = x + weights["time_embed"].unsqueeze(1)  # time embedding per (patch, frame)
        x = torch.cat([cls_tokens, x.reshape(batch, num_patches * frames, dim)], dim=1)

    for index in range(depth):
        name = f"blocks.{index}"
        if attention_type == "divided_space_time":
            x = _divided_block(x, weights, name, batch, frames, num_heads)
        else:
            x = _plain_block(x, weights, name, num_heads)

    if attention_type == "space_only":
        x = x.reshape(batch, frames, num_patches + 1, dim).mean(dim=1)
    x = _layer_norm(x, weights, "norm")
    return _linear(x[:, 0], weights, "head")
