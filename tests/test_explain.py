"""Attention rollout and relevance maps (`timesformer_hf.explain`): checked against a brute-force rollout over the
full token-mixing matrices, against planted attention, and on the trained demo model; the `explain` command and
`classify --plot` pictures."""

import itertools

import numpy as np
import pytest
import torch
from conftest import randomize_, sample_video_path, tiny_config

from timesformer_hf import TimeSformerForVideoClassification, TimeSformerModel
from timesformer_hf.explain import attention_rollout, relevance, upsample

# ---- brute force: the full token-mixing matrix of every attention step, in the model's token order ----------


def token(patch: int, frame: int, num_frames: int) -> int:
    """Position of patch `patch` of frame `frame` among `[CLS, p0t0, p0t1, ..., p1t0, ...]` (patch-major)."""
    return 1 + patch * num_frames + frame


def fused(weights: torch.Tensor, head_fusion: str, discard_ratio: float) -> torch.Tensor:
    """Heads fused, then each row's `discard_ratio` smallest weights zeroed (by sorting, not `topk`)."""
    weights = {"mean": weights.mean(1), "max": weights.amax(1), "min": weights.amin(1)}[head_fusion].double()
    count = int(weights.shape[-1] * discard_ratio)
    if count:
        threshold = weights.sort(-1).values[..., count - 1 : count]
        weights = torch.where(weights <= threshold, 0.0, weights)
    return weights


def temporal_matrix(weights: torch.Tensor, video: int, num_patches: int, num_frames: int) -> torch.Tensor:
    """Token space: each patch position's frames mixed by `weights[(video, patch)]`; the CLS row is empty."""
    matrix = torch.zeros(1 + num_patches * num_frames, 1 + num_patches * num_frames, dtype=torch.float64)
    for patch, t, s in itertools.product(range(num_patches), range(num_frames), range(num_frames)):
        matrix[token(patch, t, num_frames), token(patch, s, num_frames)] = weights[
            video * num_patches + patch, t, s
        ]
    return matrix


def spatial_matrix(weights: torch.Tensor, video: int, num_patches: int, num_frames: int) -> torch.Tensor:
    """Token space: each frame's `1 + N` tokens mixed by `weights[(video, frame)]`, the frame's token 0 being the
    CLS token; the CLS row is the mean over frames of the frames' CLS rows."""
    matrix = torch.zeros(1 + num_patches * num_frames, 1 + num_patches * num_frames, dtype=torch.float64)
    for frame in range(num_frames):
        frame_weights = weights[video * num_frames + frame]
        tokens = [0] + [token(patch, frame, num_frames) for patch in range(num_patches)]
        for i, j in itertools.product(range(1 + num_patches), repeat=2):
            if i == 0:
                matrix[0, tokens[j]] += frame_weights[0, j] / num_frames
            else:
                matrix[tokens[i], tokens[j]] = frame_weights[i, j]
    return matrix


def step(attention: torch.Tensor) -> torch.Tensor:
    """`I + A`, rows renormalised."""
    matrix = torch.eye(len(attention), dtype=torch.float64) + attention
    return matrix / matrix.sum(-1, keepdim=True)


def brute_force_maps(model, weights_of, attention_type, pixel_values):
    """The CLS row of the product of every step's full matrix (the first step rightmost), as `(B, T, h, w)`.

    `weights_of(outputs)` gives each returned attention tensor's `(B', S, S)` matrix (spatial ones, then temporal).
    """
    batch_size, num_frames = pixel_values.shape[:2]
    grid = (pixel_values.shape[-2] // 8, pixel_values.shape[-1] // 8)
    num_patches = grid[0] * grid[1]
    outputs = model(pixel_values, output_attentions=True)
    spatial, temporal = weights_of(outputs)
    maps = torch.zeros(batch_size, num_frames, *grid, dtype=torch.float64)
    for video in range(batch_size):
        if attention_type == "space_only":  # every frame on its own, the final CLS tokens averaged
            for frame in range(num_frames):
                product = torch.eye(1 + num_patches, dtype=torch.float64)
                for layer_weights in spatial:
                    product = step(layer_weights[video * num_frames + frame]) @ product
                maps[video, frame] = product[0, 1:].reshape(grid) / num_frames
            continue
        product = torch.eye(1 + num_patches * num_frames, dtype=torch.float64)
        for layer, layer_weights in enumerate(spatial):
            if attention_type == "divided_space_time":
                product = step(temporal_matrix(temporal[layer], video, num_patches, num_frames)) @ product
                product = step(spatial_matrix(layer_weights, video, num_patches, num_frames)) @ product
            else:
                product = step(layer_weights[video]) @ product
        for patch, frame in itertools.product(range(num_patches), range(num_frames)):
            maps[video, frame].view(-1)[patch] = product[0, token(patch, frame, num_frames)]
    return maps


def random_model(attention_type, **overrides):
    return randomize_(
        TimeSformerForVideoClassification(tiny_config(attention_type=attention_type, **overrides))
    )


# 3 frames (the config has 4) of 16x24: a 2x3 grid; 3 layers
VIDEO_SHAPE = (2, 3, 3, 16, 24)


@pytest.mark.parametrize(("head_fusion", "discard_ratio"), [("mean", 0.0), ("max", 0.0), ("min", 0.5)])
def test_rollout_equals_the_brute_force_rollout(attention_type, head_fusion, discard_ratio):
    model = random_model(attention_type, num_hidden_layers=3)
    pixel_values = torch.randn(VIDEO_SHAPE, generator=torch.Generator().manual_seed(0))

    def weights_of(outputs):
        temporal = outputs.temporal_attentions or ()
        return [
            [fused(w.detach(), head_fusion, discard_ratio) for w in ws]
            for ws in (outputs.attentions, temporal)
        ]

    expected = brute_force_maps(model, weights_of, attention_type, pixel_values)
    maps = attention_rollout(model, pixel_values, head_fusion=head_fusion, discard_ratio=discard_ratio)
    assert maps.shape == (2, 3, 2, 3) and maps.dtype == torch.float32
    torch.testing.assert_close(maps.double(), expected, rtol=0, atol=1e-5)
    assert maps.sum((1, 2, 3)).max() < 1  # the rest is the CLS token's own share


def test_relevance_equals_the_brute_force_relevance(attention_type):
    model = random_model(attention_type, num_hidden_layers=3)
    pixel_values = torch.randn(VIDEO_SHAPE, generator=torch.Generator().manual_seed(1))
    targets = [1, 4]

    def weights_of(outputs):
        attentions = [*outputs.attentions, *(outputs.temporal_attentions or ())]
        score = outputs.logits[0, targets[0]] + outputs.logits[1, targets[1]]
        gradients = torch.autograd.grad(score, attentions)
        weighted = [(g * a).clamp(min=0).mean(1).double() for g, a in zip(gradients, attentions, strict=True)]
        weighted = [w / w.sum(-1, keepdim=True).where(w.sum(-1, keepdim=True) > 0, 1.0) for w in weighted]
        return weighted[: len(outputs.attentions)], weighted[len(outputs.attentions) :]

    with torch.enable_grad():
        expected = brute_force_maps(model, weights_of, attention_type, pixel_values.requires_grad_())
    maps = relevance(model, pixel_values.detach(), target=targets)
    assert maps.shape == (2, 3, 2, 3) and maps.dtype == torch.float32
    torch.testing.assert_close(maps.double(), expected, rtol=0, atol=1e-5)
    assert expected.abs().sum() > 1e-3  # not trivially zero
    assert all(parameter.grad is None for parameter in model.parameters())


def test_relevance_defaults_to_the_top_prediction():
    model = random_model("divided_space_time")
    pixel_values = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        top = model(pixel_values).logits.argmax(-1)
    torch.testing.assert_close(relevance(model, pixel_values), relevance(model, pixel_values, target=top))
    assert not torch.allclose(
        relevance(model, pixel_values, target=(top + 1) % 5), relevance(model, pixel_values)
    )


def test_relevance_does_not_depend_on_the_scale_of_the_logits():
    model = random_model("divided_space_time")
    pixel_values = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    maps = relevance(model, pixel_values)
    with torch.no_grad():
        model.classifier.weight.mul_(10.0)
        model.classifier.bias.mul_(10.0)
    torch.testing.assert_close(relevance(model, pixel_values), maps, rtol=1e-4, atol=1e-6)


def bar_columns(pixel_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """`(frames,)`: the patch column holding the bright bar in each frame (the bar is one patch wide)."""
    columns = pixel_values[0, :, 0].mean(1)  # (frames, width): the mean of each pixel column
    return columns.unflatten(1, (-1, patch_size)).mean(-1).argmax(-1)


def test_relevance_finds_the_moving_bar_of_the_demo(demo_model):
    """On the trained demo model, the relevance per patch is higher on the bar than on the background, more so than
    the class-agnostic rollout's, and it depends on the class explained."""
    from timesformer_hf.inference import load_model

    repo, data = demo_model
    model, processor = load_model(repo, device="cpu")
    videos = sorted((data / "validation").rglob("*.mp4"))
    ratios, rollout_ratios, similarities = [], [], []
    for video in videos:
        pixel_values = processor(str(video), return_tensors="pt")["pixel_values"]
        maps = relevance(model, pixel_values)[0]  # (frames, rows, columns), for the top class
        rollout = attention_rollout(model, pixel_values)[0]
        on_bar = torch.zeros_like(maps, dtype=torch.bool)
        on_bar[torch.arange(len(maps)), :, bar_columns(pixel_values, 8)] = True
        ratios.append((maps[on_bar].mean() / maps[~on_bar].mean()).item())
        rollout_ratios.append((rollout[on_bar].mean() / rollout[~on_bar].mean()).item())
        second = model(pixel_values).logits.argsort(descending=True)[0, 1]
        other = relevance(model, pixel_values, target=second)[0]
        similarities.append(torch.nn.functional.cosine_similarity(maps.flatten(), other.flatten(), 0).item())
    ratios, rollout_ratios, similarities = map(torch.tensor, (ratios, rollout_ratios, similarities))
    report = (
        f"per patch, bar / background, over {len(videos)} videos: relevance mean {ratios.mean():.2f}, min "
        f"{ratios.min():.2f}, above 1 for {(ratios > 1).float().mean():.0%}; rollout mean {rollout_ratios.mean():.2f};"
        f" cosine of the relevance of the top and the second class {similarities.mean():.2f}"
    )
    print(report)
    assert ratios.mean() > 1.3 and (ratios > 1).float().mean() >= 0.8, report
    assert ratios.mean() > rollout_ratios.mean() + 0.2, (
        report
    )  # the class's evidence, not where attention goes
    assert similarities.mean() < 0.95, report  # another class, another map


# ---- planted attention: the CLS token looks at one patch of one frame ----------------------------------------


def planted_model(attention_type: str) -> TimeSformerForVideoClassification:
    """A model in which the CLS token attends (in every layer) to the patch whose pixels are 1, all others 0.

    Every weight is zero but: the patch embedding writes a patch's mean pixel to feature 0; the CLS token is
    `e1 - e2` (feature 0 is zero after the LayerNorm); the spatial (or joint) queries read feature 1 and the keys
    feature 0, so only the CLS token's query and only the bright patch's key are non-zero. Values, projections and
    MLPs are zero, so the tokens do not change from layer to layer; temporal attention is uniform.
    """
    model = TimeSformerForVideoClassification(tiny_config(attention_type=attention_type)).eval()
    hidden = model.config.hidden_size
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.fill_(1.0 if "layernorm" in name and name.endswith("weight") else 0.0)
        embeddings = model.timesformer.embeddings
        embeddings.patch_embeddings.projection.weight[0] = 1.0 / (3 * 8 * 8)
        embeddings.cls_token[0, 0, 1], embeddings.cls_token[0, 0, 2] = 1.0, -1.0
        for layer in model.timesformer.encoder.layer:
            qkv = layer.attention.attention.qkv.weight
            qkv[:hidden, 1] = 1.0  # queries read feature 1
            qkv[hidden : 2 * hidden, 0] = 1.0  # keys read feature 0
    return model


@pytest.mark.parametrize(
    ("num_frames", "size", "planted"),
    [
        (4, (32, 32), (0, 0, 0)),
        (3, (16, 40), (2, 1, 4)),  # fewer frames than the config's 4, a 2x5 grid
        (6, (40, 16), (4, 3, 1)),  # more frames, a 5x2 grid
        (5, (24, 32), (1, 2, 0)),
        (2, (8, 48), (1, 0, 3)),  # one row of patches
    ],
)
def test_the_map_peaks_at_the_planted_patch(attention_type, num_frames, size, planted):
    frame, row, column = planted
    pixel_values = torch.zeros(1, num_frames, 3, *size)
    pixel_values[0, frame, :, row * 8 : (row + 1) * 8, column * 8 : (column + 1) * 8] = 1.0
    model = planted_model(attention_type)
    with torch.no_grad():
        cls_attention = model(pixel_values, output_attentions=True).attentions[-1][..., 0, :].max()
    assert cls_attention > 0.99  # the planting worked: the CLS token looks at one token
    maps = attention_rollout(model, pixel_values)
    grid = (size[0] // 8, size[1] // 8)
    assert maps.shape == (1, num_frames, *grid)
    assert divmod(divmod(maps[0].argmax().item(), grid[0] * grid[1])[1], grid[1]) == (row, column)
    assert maps[0].argmax().item() // (grid[0] * grid[1]) == frame


# ---- arguments, devices and dtypes ----------------------------------------------------------------------------


def test_bad_arguments_are_named():
    model = random_model("divided_space_time")
    video = torch.randn(1, 4, 3, 32, 32)
    with pytest.raises(ValueError, match="head_fusion must be one of mean, max, min"):
        attention_rollout(model, video, head_fusion="median")
    with pytest.raises(ValueError, match=r"discard_ratio must be in \[0, 1\)"):
        attention_rollout(model, video, discard_ratio=1.0)
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 5\)"):
        relevance(model, video, target=5)
    with pytest.raises(ValueError, match=r"one per video \(1\)"):
        relevance(model, video, target=[0, 1])
    with pytest.raises(ValueError, match="pass a TimeSformerForVideoClassification"):
        relevance(TimeSformerModel(tiny_config()).eval(), video)
    with pytest.raises(ValueError, match=r"call model.eval\(\) first"):
        attention_rollout(model.train(), video)
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        attention_rollout(model.eval(), video[0])


def test_maps_of_a_bf16_sdpa_backbone_are_float32():
    config = tiny_config(attn_implementation="sdpa")
    model = randomize_(TimeSformerModel(config)).to(torch.bfloat16)
    reference = randomize_(TimeSformerModel(tiny_config()))
    video = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    maps = attention_rollout(model, video)
    assert maps.dtype == torch.float32
    torch.testing.assert_close(maps, attention_rollout(reference, video), rtol=0, atol=1e-4)


def test_relevance_of_a_bf16_classifier_is_float32():
    model = random_model("divided_space_time").to(torch.bfloat16)
    reference = random_model("divided_space_time")
    video = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        target = reference(video).logits.argmax(-1)
    maps = relevance(model, video, target=target)
    assert maps.dtype == torch.float32
    # bf16 gradients are coarse: the map keeps its shape (another class's map correlates at 0.15)
    expected = relevance(reference, video, target=target)
    assert torch.corrcoef(torch.stack([maps.flatten(), expected.flatten()]))[0, 1] > 0.9


def test_upsample_covers_each_patch():
    maps = torch.arange(6.0).view(1, 1, 2, 3)
    upsampled = upsample(maps, (16, 24), mode="nearest")
    assert upsampled.shape == (1, 1, 16, 24)
    assert upsampled[0, 0, 8:, 8:16].unique().tolist() == [4.0]
    assert upsample(maps, (16, 24)).shape == (1, 1, 16, 24)


# ---- the pictures: `explain` and `classify --plot` ------------------------------------------------------------


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """6 s of moving bars, 8 frames a second."""
    import numpy as np

    from timesformer_hf.synthetic import motion_video, write_video

    path = tmp_path_factory.mktemp("long") / "long.mp4"
    write_video(path, np.concatenate([motion_video("right_1", 8, 32, rng=i) for i in range(6)]), fps=8)
    return path


def run_cli(*argv) -> int:
    from timesformer_hf.commands.app import main

    return main([str(argument) for argument in argv])


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err
    assert error.startswith("timesformer-hf: error: ") and error.count("\n") == 1, error
    return error


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("map.png", ()),
        ("map.gif", ("--method", "rollout")),
        ("map.mp4", ("--target", "left_2", "--fps", "4")),
    ],
)
def test_explain_writes_pictures_that_decode(repo, tmp_path, capsys, name, options):
    from PIL import Image

    from timesformer_hf.video import probe_video

    output = tmp_path / "out" / name
    video = sample_video_path("bikes.mp4")
    assert run_cli("explain", repo, video, "--output", output, "--device", "cpu", *options) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"Wrote {output} (") and "%" in printed
    if name.endswith(".png"):
        with Image.open(output) as image:
            assert image.format == "PNG" and image.width > 500
    elif name.endswith(".gif"):
        with Image.open(output) as image:
            assert image.format == "GIF" and image.n_frames == 4  # the repo's 4 frames
            frame = np.asarray(image.convert("RGB")).astype(int)
        bar = frame[
            :, round(frame.shape[1] * 4.26 / 5.0)
        ]  # the colour bar, right of the frame: jet, red to blue
        assert ((bar[:, 0] > 150) & (bar[:, 2] < 80)).any() and ((bar[:, 2] > 150) & (bar[:, 0] < 80)).any()
        assert "attention rollout" in printed
    else:
        assert probe_video(output).total_num_frames == 4
        assert "relevance for left_2" in printed
    assert [path.name for path in output.parent.iterdir()] == [name]  # written atomically: nothing else left


def test_explain_says_what_is_wrong_in_one_line(repo, tmp_path, capsys):
    video, output = sample_video_path("bikes.mp4"), tmp_path / "map.png"
    output.write_bytes(b"old")
    assert run_cli("explain", repo, video, "--output", output) == 1
    assert "exists: pass --overwrite" in one_line_error(capsys)
    assert output.read_bytes() == b"old"
    assert run_cli("explain", repo, video, "--output", output, "--overwrite", "--target", "up") == 1
    error = one_line_error(capsys)
    assert "Unknown --target 'up'" in error and "left_1, left_2, right_1, right_2" in error
    assert (
        run_cli(
            "explain", repo, video, "--output", tmp_path / "new.png", "--method", "rollout", "--target", "up"
        )
        == 1
    )
    assert "--target chooses the class of --method relevance" in one_line_error(capsys)
    assert run_cli("explain", repo, video, "--output", tmp_path / "map.jpg") == 1
    assert "--output must end in .png, .gif, .mp4" in one_line_error(capsys)
    assert run_cli("explain", repo, video, "--output", output, "--overwrite") == 0
    assert output.read_bytes().startswith(b"\x89PNG")


def test_an_unknown_target_lists_some_labels():
    from timesformer_hf.commands.errors import CLIError
    from timesformer_hf.commands.explain import target_index

    labels = {f"class {i}": i for i in range(400)}
    assert target_index("class 7", labels) == 7
    with pytest.raises(CLIError, match=r"are class 0, .*, class 9, \.\.\. \(400 in all\)\.$"):
        target_index("class 400", labels)


def test_classify_plots_a_timeline_per_video(repo, long_video, tmp_path, capsys):
    import shutil

    from PIL import Image

    plot = tmp_path / "plots" / "timeline.png"
    assert (
        run_cli(
            "classify", repo, long_video, "--window", "2", "--stride", "1", "--plot", plot, "--top-k", "3"
        )
        == 0
    )
    with Image.open(plot) as image:
        assert image.format == "PNG"
    # several videos: one file each, named after the video; also from a stored (--output) run
    second = tmp_path / "videos" / "second.mp4"
    second.parent.mkdir()
    shutil.copy(long_video, second)
    argv = [
        "classify",
        repo,
        long_video,
        second,
        "--window",
        "3",
        "--plot",
        plot,
        "--output",
        tmp_path / "r.jsonl",
    ]
    assert run_cli(*argv) == 0
    assert sorted(path.name for path in plot.parent.iterdir()) == [
        "timeline-long.png",
        "timeline-second.png",
        "timeline.png",
    ]


def test_classify_plot_errors_are_one_line(repo, long_video, tmp_path, capsys):
    import shutil

    assert run_cli("classify", repo, long_video, "--plot", tmp_path / "t.png") == 1
    assert "--plot draws the results of time windows: add --window" in one_line_error(capsys)
    assert run_cli("classify", repo, long_video, "--window", "2", "--plot", tmp_path / "t.pdf") == 1
    assert "--plot writes a PNG" in one_line_error(capsys)
    (tmp_path / "other").mkdir()
    shutil.copy(long_video, tmp_path / "other" / "long.mp4")
    assert (
        run_cli(
            "classify", repo, long_video, tmp_path / "other", "--window", "2", "--plot", tmp_path / "t.png"
        )
        == 1
    )
    assert "several videos are called long" in one_line_error(capsys)


def test_without_matplotlib_the_pictures_say_what_to_install(repo, long_video, tmp_path, capsys, monkeypatch):
    import numpy as np
    from test_extras import without_module

    from timesformer_hf.visualization import animate_explanation, plot_explanation

    without_module(monkeypatch, "matplotlib")
    assert run_cli("explain", repo, long_video, "--output", tmp_path / "map.png") == 1
    assert "timesformer-hf explain needs matplotlib: pip install 'timesformer-hf[viz]'" in one_line_error(
        capsys
    )
    assert run_cli("classify", repo, long_video, "--window", "2", "--plot", tmp_path / "t.png") == 1
    assert "classify --plot needs matplotlib: pip install 'timesformer-hf[viz]'" in one_line_error(capsys)
    frames, maps = np.zeros((2, 8, 8, 3)), np.ones((2, 8, 8))
    for draw, name in ((plot_explanation, "map.png"), (animate_explanation, "map.gif")):
        with pytest.raises(ImportError, match=r"pip install 'timesformer-hf\[viz\]'"):
            draw(frames, maps, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
