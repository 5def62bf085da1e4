"""bf16 linear layers on a CPU through oneDNN, their weights packed once, for inference.

In bf16 on a CPU, `nn.Linear` runs `addmm`, which reorders the weight into oneDNN's blocked layout at every call and
writes the bias into the output before the GEMM accumulates into it. oneDNN's linear primitive
(`torch.ops.mkldnn._linear_pointwise`, what `torch.compile` calls on frozen weights) takes a weight packed ahead of
time and adds the bias in its epilogue: 9-29% faster for the GEMMs of one 8x224 clip (1569 tokens) on a CPU with
AMX, but up to 14% slower than `addmm` for the largest ones beyond 6000 tokens, so it serves inputs of at most
`MAX_PACKED_ROWS` tokens: a base 8x224 forward in bf16 at batch 1 runs 4-7% faster (BENCHMARKS.md). [`load_model`]
packs the model it returns for bf16 on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

MAX_PACKED_ROWS = 4096  # tokens (rows of the GEMM) a call may have to run packed; more run `addmm`


def packed_linear_available() -> bool:
    """Whether this PyTorch build has oneDNN's bf16 linear primitive and this CPU runs bf16 natively."""
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


class PackedLinear(nn.Linear):
    """An `nn.Linear` whose bf16 CPU inference runs on a copy of its weight packed for oneDNN.

    The copy is a snapshot taken by [`pack_linear_layers`]: a weight changed since (loaded, `.to()`, an optimizer step;
    anything but an edit through `.data`, so pack again after merging adapters), training, gradients, other dtypes and
    devices, more than `MAX_PACKED_ROWS` tokens, tracing and `torch.compile` run `nn.Linear.forward`. Parameters, state dict, hooks and `repr` are those of
    an `nn.Linear`; the copy is not saved, and dropped by `train()` and by copies of the module.
    """

    # ((the weight's data_ptr, its version), the packed weight), set by `pack`
    _packed: tuple[tuple[int, int], torch.Tensor] | None = None

    def pack(self) -> None:
        """Snapshot the weight, packed for oneDNN (a bf16 weight on the CPU, not an inference tensor; otherwise
        nothing to pack)."""
        weight = self.weight
        self._packed = None
        # an inference tensor (made under `torch.inference_mode()`) has no version counter to tell a change
        if weight.device.type == "cpu" and weight.dtype == torch.bfloat16 and not weight.is_inference():
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
            self._packed = ((weight.data_ptr(), weight._version), packed)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        packed = self._packed_weight(input)
        if packed is None:
            return super().forward(input)
        return torch.ops.mkldnn._linear_pointwise(input, packed, self.bias, "none", [], "")

    def _packed_weight(self, input: torch.Tensor) -> torch.Tensor | None:
        """The packed weight if this call may use it: inference on the weight as packed."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or self._packed is None:
            return None
        key, packed = self._packed
        weight = self.weight
        if (
            key != (weight.data_ptr(), weight._version)
            or input.dtype != weight.dtype
            or input.device != weight.device
            or input.numel() > MAX_PACKED_ROWS * input.shape[-1]
        ):
            return None
        if torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (input, weight, self.bias)
        ):
            return None
        return packed

    def train(self, mode: bool = True) -> PackedLinear:
        if mode:
            self._packed = None  # training changes the weight
        return super().train(mode)

    def __getstate__(self) -> dict:
        # the packed tensor is opaque (no storage to copy or pickle); a copy runs unpacked until packed again
        return {**super().__getstate__(), "_packed": None}


def pack_linear_layers(model: nn.Module) -> nn.Module:
    """Make every `nn.Linear` of `model` (that class exactly, not adapters' wrappers) a [`PackedLinear`] and pack its
    bf16 CPU weight, in place; no-op where oneDNN's bf16 linear is unavailable. For inference: call it after the model
    is on its device, in its dtype, with its final weights. Returns the model.

    Example:

    ```python
    >>> model = TimeSformerForVideoClassification.from_pretrained(repo).eval().to(torch.bfloat16)  # doctest: +SKIP
    >>> model = pack_linear_layers(model)  # doctest: +SKIP
    >>> with torch.inference_mode():  # doctest: +SKIP
    ...     logits = model(pixel_values.to(torch.bfloat16)).logits
    ```
    """
    if not packed_linear_available():
        return model
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = PackedLinear
        if isinstance(module, PackedLinear):
            module.pack()
    return model
