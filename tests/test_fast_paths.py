"""Numerical agreement of the fast paths the benchmark runs (bf16, torch.compile with inductor) with fp32 eager."""

import pytest
import torch
from conftest import randomize_, tiny_config

from timesformer_hf import TimeSformerForVideoClassification
from timesformer_hf.inference import compile_for_inference
from timesformer_hf.modeling_timesformer import eager_attention_forward, short_sequence_attention_forward

ATOL = 1e-5
# bf16 keeps 8 bits of mantissa (relative step 2**-8 = 0.4%); through 2 layers the logits of the tiny models move by
# 0.3-0.7% of the largest logit, so 2% leaves a margin without hiding a wrong path.
BF16_TOLERANCE = 0.02  # of the largest fp32 logit


def tiny_model(attention_type: str) -> TimeSformerForVideoClassification:
    return randomize_(TimeSformerForVideoClassification(tiny_config(attention_type=attention_type)))


def clip(batch: int = 2, frames: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(1))


def assert_bf16_close(model: torch.nn.Module, pixel_values: torch.Tensor, device: str) -> None:
    with torch.no_grad():
        reference = model.to(device)(pixel_values.to(device)).logits.float()
        model = model.to(dtype=torch.bfloat16)
        logits = model(pixel_values.to(device, torch.bfloat16)).logits
    assert logits.dtype == torch.bfloat16
    error = (logits.float() - reference).abs().max().item()
    assert error <= BF16_TOLERANCE * reference.abs().max().item(), (error, reference.abs().max().item())
    assert (logits.float().argmax(-1) == reference.argmax(-1)).all()


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_bf16_matches_fp32(attention_type, attn_implementation):
    model = tiny_model(attention_type)
    model.set_attn_implementation(attn_implementation)
    assert_bf16_close(model, clip(), "cpu")


@pytest.mark.cuda  # deselected by default; `make test-gpu` on a machine with a GPU
def test_bf16_sdpa_on_cuda_matches_fp32(attention_type):
    assert_bf16_close(tiny_model(attention_type), clip(), "cuda")


@pytest.mark.slow  # an inductor compile takes 30 s to 2 min on 2 cores
def test_inductor_compiled_matches_eager(attention_type):
    model = tiny_model(attention_type)
    pixel_values = clip()
    compiled = compile_for_inference(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(
            compiled(pixel_values).logits, model(pixel_values).logits, atol=ATOL, rtol=0
        )


def test_compile_for_inference_freezes_the_weights():
    # `options={"freezing": True}` alone compiled the weights as inputs (dynamo reads the flag while it traces)
    model = tiny_model("divided_space_time").eval()
    pixel_values = clip(batch=1)
    compiled = compile_for_inference(model)
    with torch.inference_mode():
        expected = model(pixel_values).logits
        torch.testing.assert_close(compiled(pixel_values).logits, expected, atol=ATOL, rtol=0)
        model.classifier.weight.zero_()  # constants of the compiled graph now: it keeps the weights it saw
        torch.testing.assert_close(compiled(pixel_values).logits, expected, atol=ATOL, rtol=0)
        assert not torch.allclose(model(pixel_values).logits, expected)


def test_chunked_feed_forward_matches_one_pass(attention_type):
    # dropout is 0 in the tiny config: train mode only turns on autograd through every path
    model = tiny_model(attention_type).train()
    pixel_values = clip()
    chunked = tiny_model(attention_type).train()
    for layer in chunked.timesformer.encoder.layer:
        layer.chunk_size_feed_forward = 7  # uneven chunks of the 130 tokens (136 for space-only)
    for layer in model.timesformer.encoder.layer:
        layer.chunk_size_feed_forward = 0
    expected, outputs = model(pixel_values), chunked(pixel_values)
    torch.testing.assert_close(outputs.logits, expected.logits, atol=ATOL, rtol=0)
    expected.logits.sum().backward()
    outputs.logits.sum().backward()
    for (name, parameter), reference in zip(chunked.named_parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, reference.grad, atol=ATOL, rtol=0, msg=name)
    compiled = torch.compile(chunked.eval(), backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(pixel_values).logits, expected.logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sdpa_on_cpu_leaves_short_sequences_in_bf16_to_matmuls(monkeypatch, dtype):
    lengths = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, *args, **kwargs):
        lengths.append((query.shape[-2], key.shape[-2]))
        return sdpa(query, key, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    model = tiny_model("divided_space_time").to(dtype)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        model(clip().to(dtype))
    # the spatial attention over 1 + 16 tokens runs in sdpa (in the last layer, the CLS token alone queries); the
    # temporal one over 4 frames too in fp32, in bf16 in `short_sequence_attention_forward`
    temporal = [(4, 4)] if dtype == torch.float32 else []
    expected = (temporal + [(17, 17)]) * (model.config.num_hidden_layers - 1) + temporal + [(1, 17)]
    assert lengths == expected


def test_short_sequence_attention_matches_eager():
    module = torch.nn.Module().eval()
    query, key, value = torch.randn(3, 6, 2, 8, 16, generator=torch.Generator().manual_seed(0)).unbind(0)
    expected, _ = eager_attention_forward(module, query, key, value, None, scaling=0.25)
    output, weights = short_sequence_attention_forward(module, query, key, value, None, scaling=0.25)
    assert weights is None and output.shape == expected.shape == (6, 8, 2, 16)
    torch.testing.assert_close(output, expected, atol=1e-6, rtol=0)


def test_a_layer_put_in_place_of_a_fused_projection_runs():
    """An adapter (or any module) attached after fusing replaces the projection: the fused weights stand aside."""
    model = tiny_model("divided_space_time").eval()
    pixel_values = clip()
    model.fuse_temporal_projections()
    layer = model.timesformer.encoder.layer[0]
    with torch.no_grad():
        before = model(pixel_values).logits
        layer.temporal_dense = torch.nn.Sequential(layer.temporal_dense, torch.nn.Tanh())
        after = model(pixel_values).logits
        assert not torch.allclose(after, before, atol=1e-3)
        model.timesformer.encoder.layer[0].fused_temporal_weight = None  # the reference: unfused
        torch.testing.assert_close(model(pixel_values).logits, after, atol=ATOL, rtol=0)


def test_fused_temporal_projections_match_the_two_layers(monkeypatch):
    model = tiny_model("divided_space_time").eval()
    pixel_values = clip()
    calls = []
    for layer in model.timesformer.encoder.layer:
        forward = layer.temporal_dense.forward
        monkeypatch.setattr(layer.temporal_dense, "forward", lambda x, f=forward: calls.append(1) or f(x))
    with torch.no_grad():
        expected = model(pixel_values).logits
    assert len(calls) == model.config.num_hidden_layers
    keys = set(model.state_dict())

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.fuse_temporal_projections() is model
    assert set(model.state_dict()) == keys  # nothing new is saved
    layer = model.timesformer.encoder.layer[0]
    assert (
        layer.fused_temporal_weight.dtype == torch.float32 and not layer.fused_temporal_weight.is_inference()
    )
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values).logits, expected, atol=ATOL, rtol=0)
    assert len(calls) == model.config.num_hidden_layers  # temporal_dense did not run
    inputs = pixel_values.clone().requires_grad_()
    model(inputs).logits.sum().backward()  # gradients reach the input through the fused weights
    assert inputs.grad.abs().sum() > 0
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(pixel_values).logits, expected, atol=ATOL, rtol=0)

    state = {name: value + 0.01 for name, value in model.state_dict().items()}
    model.load_state_dict(state)  # new weights drop the fusion
    assert layer.fused_temporal_weight is None
    with torch.no_grad():
        reloaded = model(pixel_values).logits
    assert not torch.allclose(reloaded, expected, atol=1e-3)
    model.fuse_temporal_projections()
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values).logits, reloaded, atol=ATOL, rtol=0)

    model.train()  # training drops the fusion: the two layers learn
    assert layer.fused_temporal_weight is None and layer.fused_temporal_bias is None
    with pytest.raises(RuntimeError, match="eval"):
        model.fuse_temporal_projections()
    model.eval().to(torch.float64).fuse_temporal_projections()
    with torch.no_grad():
        fused = model(pixel_values.double()).logits
    assert fused.dtype == torch.float64
    model.train().eval()
    with torch.no_grad():
        torch.testing.assert_close(fused, model(pixel_values.double()).logits, atol=1e-10, rtol=0)
