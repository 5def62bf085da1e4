"""bf16 linear layers packed for oneDNN (`pack_linear_layers`): the same outputs, and `nn.Linear` whenever the packed
weight may not serve (training, gradients, other dtypes, changed weights, copies, compile)."""

import copy
import io

import pytest
import torch
from conftest import randomize_, tiny_config
from torch.profiler import profile

from timesformer_hf import TimeSformerForVideoClassification
from timesformer_hf.inference import compile_for_inference, load_model
from timesformer_hf.packed_linear import (
    MAX_PACKED_ROWS,
    PackedLinear,
    pack_linear_layers,
    packed_linear_available,
)

# This machine (and CI) has oneDNN's bf16 linear; elsewhere packing is a no-op, which the last test holds.
needs_onednn = pytest.mark.skipif(not packed_linear_available(), reason="no oneDNN bf16 linear on this CPU")


def mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 8))
    return layers.to(torch.bfloat16).eval()


def inputs() -> torch.Tensor:
    return torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)


def linear_ops(module: torch.nn.Module, x: torch.Tensor) -> list[str]:
    """The linear kernels one call of `module` runs."""
    with profile() as prof:
        module(x)
    return [
        event.name for event in prof.events() if event.name in ("aten::addmm", "mkldnn::_linear_pointwise")
    ]


@needs_onednn
def test_packed_layers_give_the_same_outputs_through_onednn():
    reference, packed = mlp(), pack_linear_layers(mlp())
    assert [type(layer).__name__ for layer in packed] == ["PackedLinear", "GELU", "PackedLinear"]
    assert list(packed.state_dict()) == list(reference.state_dict())
    with torch.inference_mode():
        expected, output = reference(inputs()), packed(inputs())
        assert linear_ops(packed, inputs()) == ["mkldnn::_linear_pointwise"] * 2
    torch.testing.assert_close(output, expected, atol=2e-2, rtol=0)
    with torch.no_grad():
        assert linear_ops(packed, inputs()) == ["mkldnn::_linear_pointwise"] * 2


@needs_onednn
def test_packed_layers_run_nn_linear_whenever_the_packed_weight_may_not_serve():
    packed, x = pack_linear_layers(mlp()), inputs()
    assert linear_ops(packed, x) == ["aten::addmm"] * 2  # gradients on: the weights require them
    loss = packed(x).float().sum()
    loss.backward()
    assert packed[0].weight.grad is not None
    with torch.inference_mode():
        many_tokens = torch.randn(MAX_PACKED_ROWS + 1, 32).to(torch.bfloat16)
        assert linear_ops(packed, many_tokens) == ["aten::addmm"] * 2  # GEMMs too large to gain from packing
        assert linear_ops(packed, many_tokens[:MAX_PACKED_ROWS]) == ["mkldnn::_linear_pointwise"] * 2
        with pytest.raises(RuntimeError, match="same dtype"):
            packed(x.float())  # another dtype: nn.Linear, which refuses it
    with torch.no_grad():
        packed[0].weight.mul_(2)  # a weight changed in place: this layer runs unpacked, with the new weight
        assert linear_ops(packed, x) == ["aten::addmm", "mkldnn::_linear_pointwise"]
        pack_linear_layers(packed)  # packed again
        assert linear_ops(packed, x) == ["mkldnn::_linear_pointwise"] * 2
        packed.load_state_dict(mlp().state_dict())  # loaded weights: unpacked until packed again
        assert linear_ops(packed, x) == ["aten::addmm"] * 2
        torch.testing.assert_close(packed(x), mlp()(x), atol=0, rtol=0)
        pack_linear_layers(packed)
        packed.train()
        assert linear_ops(packed, x) == ["aten::addmm"] * 2  # training drops the packed weights


@needs_onednn
def test_copies_and_pickles_of_packed_layers_run_unpacked():
    packed, x = pack_linear_layers(mlp()), inputs()
    copied = copy.deepcopy(packed)
    buffer = io.BytesIO()
    torch.save(packed, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        for module in (copied, loaded):
            assert linear_ops(module, x) == ["aten::addmm"] * 2
            torch.testing.assert_close(module(x), packed(x), atol=2e-2, rtol=0)
        assert linear_ops(packed, x) == ["mkldnn::_linear_pointwise"] * 2


@needs_onednn
def test_a_packed_model_compiles_saves_and_gives_the_logits_of_the_unpacked_one(tmp_path):
    model = randomize_(TimeSformerForVideoClassification(tiny_config())).to(torch.bfloat16)
    pixel_values = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    packed = pack_linear_layers(copy.deepcopy(model))
    assert (
        sum(module._packed is not None for module in packed.modules() if isinstance(module, PackedLinear))
        == 15
    )
    with torch.inference_mode():
        expected = model(pixel_values).logits
        torch.testing.assert_close(packed(pixel_values).logits, expected, atol=2e-2, rtol=0)
        compiled = compile_for_inference(packed)
        torch.testing.assert_close(compiled(pixel_values).logits, expected, atol=5e-2, rtol=0)
    packed.save_pretrained(tmp_path)
    reloaded = TimeSformerForVideoClassification.from_pretrained(tmp_path).eval()
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(pixel_values).logits, expected, atol=0, rtol=0)


def test_load_model_packs_bf16_on_the_cpu_only(repo):
    bf16, _ = load_model(repo, dtype="bf16", device="cpu")
    fp32, _ = load_model(repo, dtype="fp32", device="cpu")
    packed = [module for module in bf16.modules() if isinstance(module, PackedLinear)]
    assert not any(isinstance(module, PackedLinear) for module in fp32.modules())
    if packed_linear_available():
        assert len(packed) == 2 * 7 + 1 and all(module._packed is not None for module in packed)
    else:
        assert packed == []
    pixel_values = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = fp32(pixel_values).logits
        logits = bf16(pixel_values.to(torch.bfloat16)).logits.float()
    assert (logits - expected).abs().max() <= 0.02 * expected.abs().max()
