"""FLOPs counted by the benchmark (`FlopCounterMode` on the meta device) against the paper's cost figures."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchmark import BenchConfig, count_flops  # noqa: E402

# Paper, Table 1 and Figure 3: TFLOPs of 3 test views, counted as multiply-adds.
PAPER_TFLOPS_3_VIEWS = {"base": (8, 224, 0.59), "hr": (16, 448, 5.11), "l": (96, 224, 7.14)}


def config(frames: int, image_size: int) -> BenchConfig:
    return BenchConfig(
        preset="test",
        frames=frames,
        image_size=image_size,
        attention="divided",
        batch_size=1,
        dtype="fp32",
        device="cpu",
        attn_implementation="sdpa",
        compile=False,
        threads=1,
        warmup=0,
        repeats=0,
    )


@pytest.mark.parametrize(
    "preset", ["base", pytest.param("hr", marks=pytest.mark.slow), pytest.param("l", marks=pytest.mark.slow)]
)
def test_flops_match_the_paper(preset):
    frames, image_size, paper = PAPER_TFLOPS_3_VIEWS[preset]
    flops = count_flops("timesformer_hf", config(frames, image_size))  # 2 FLOPs per multiply-add
    assert flops / 2 * 3 / 1e12 == pytest.approx(paper, rel=0.01)


def test_flops_equal_those_of_transformers_timesformer():
    base = config(8, 224)
    assert count_flops("timesformer_hf", base) == count_flops("transformers", base)


def test_inference_fuses_the_temporal_projections_and_updates_only_the_cls_token_in_the_last_layer():
    base = config(8, 224)
    model_flops, executed = (
        count_flops("timesformer_hf", base),
        count_flops("timesformer_hf", base, executed=True),
    )
    frames, patches, hidden, layers = 8, 196, 768, 12
    tokens = frames * patches
    fused = layers * 2 * tokens * hidden * hidden  # one (D x D) GEMM less per layer
    # last layer: the patch tokens neither query the spatial attention (scores and sum over 1 + N keys) nor run
    # through its output projection (D x D) and the MLP (D x 4D, 4D x D)
    cls_token_only = 2 * 2 * tokens * (1 + patches) * hidden + 2 * tokens * hidden * hidden * (1 + 8)
    assert model_flops - executed == fused + cls_token_only
    assert cls_token_only / model_flops == pytest.approx(0.045, abs=0.001)
    assert count_flops("transformers", base, executed=True) == count_flops("transformers", base)
