"""The model: faithfulness to `transformers`' TimeSformer and to the original's resizing, options and errors."""

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
import transformers
from conftest import TINY, randomize_, tiny_config
from transformers.testing_utils import CaptureLogger, LoggingLevel
from transformers.utils import logging as hf_logging

from timesformer_hf import TimeSformerConfig, TimeSformerForVideoClassification, TimeSformerModel
from timesformer_hf.errors import InputError

ATOL = 1e-5


def tiny_model(seed: int = 0, **overrides) -> TimeSformerForVideoClassification:
    return randomize_(TimeSformerForVideoClassification(tiny_config(**overrides)), seed)


def clip(batch=2, frames=4, height=32, width=32, seed=1) -> torch.Tensor:
    return torch.randn(batch, frames, 3, height, width, generator=torch.Generator().manual_seed(seed))


@contextlib.contextmanager
def transformers_log() -> Iterator[CaptureLogger]:
    """What `transformers` logs at info level and above, in `.out` on exit (its logger does not reach caplog)."""
    with LoggingLevel(logging.INFO), CaptureLogger(hf_logging.get_logger("transformers")) as log:
        yield log


def package_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("timesformer_hf")]


def nearest_indices(size_in: int, size_out: int) -> torch.Tensor:
    """Source index of each output position for nearest interpolation (floor(i * in / out)), written by hand."""
    return torch.tensor([(i * size_in) // size_out for i in range(size_out)])


# --- config --------------------------------------------------------------------------------------------------


def test_config_accepts_pairs_and_round_trips(tmp_path):
    config = TimeSformerConfig(image_size=(32, 48), patch_size=(8, 16), num_labels=3)
    assert config.patch_grid == (4, 3)
    config.save_pretrained(tmp_path)
    reloaded = TimeSformerConfig.from_pretrained(tmp_path)
    assert tuple(reloaded.image_size) == (32, 48) and reloaded.num_labels == 3
    assert reloaded.model_type == "timesformer_hf"


def test_config_has_every_field_of_transformers_config():
    ours, theirs = TimeSformerConfig().to_dict(), transformers.TimesformerConfig().to_dict()
    assert set(theirs) - {"model_type", "transformers_version"} <= set(ours)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(attention_type="divided"), "Unknown attention_type"),
        (dict(num_frames=0), "num_frames"),
        (dict(num_attention_heads=0), "num_attention_heads must be at least 1"),
        (dict(chunk_size_feed_forward=-1), "chunk_size_feed_forward"),
    ],
)
def test_config_rejects_invalid_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TimeSformerConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(hidden_size=32),
            r"num_attention_heads \(12\).*pass num_attention_heads.*num_attention_heads=8",
        ),
        (dict(image_size=30, patch_size=16), r"not a multiple of patch_size.*image_size=\(32, 32\)"),
    ],
)
def test_fields_that_must_agree_are_checked_when_the_model_is_built(tmp_path, kwargs, message):
    config = TimeSformerConfig(**kwargs)
    assert TimeSformerConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()
    config.save_pretrained(tmp_path)
    assert TimeSformerConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
    for model_class in (TimeSformerModel, TimeSformerForVideoClassification):
        with pytest.raises(ValueError, match=message):
            model_class(config)


# --- faithfulness ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time"])
def test_logits_match_transformers_timesformer(attention_type):
    model = tiny_model(attention_type=attention_type)
    reference = transformers.TimesformerForVideoClassification(
        transformers.TimesformerConfig(**{**TINY, "attention_type": attention_type})
    ).eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    pixel_values = clip()
    with torch.no_grad():
        ours = model(pixel_values, output_hidden_states=True)
        theirs = reference(pixel_values, output_hidden_states=True)
    torch.testing.assert_close(ours.logits, theirs.logits, atol=ATOL, rtol=0)
    for mine, reference_state in zip(ours.hidden_states, theirs.hidden_states, strict=True):
        torch.testing.assert_close(mine, reference_state, atol=ATOL, rtol=0)


@pytest.mark.parametrize("frames, height, width", [(6, 48, 32), (2, 32, 40), (4, 24, 24)])
def test_other_frame_count_and_size_equal_a_model_configured_for_them(attention_type, frames, height, width):
    model = tiny_model(attention_type=attention_type)
    resized = TimeSformerForVideoClassification(
        tiny_config(attention_type=attention_type, num_frames=frames, image_size=(height, width))
    ).eval()
    state = model.state_dict()
    grid_in, grid_out = (4, 4), (height // 8, width // 8)
    position = state["timesformer.embeddings.position_embeddings"]
    patch_position = position[0, 1:].reshape(*grid_in, -1)
    rows, cols = nearest_indices(grid_in[0], grid_out[0]), nearest_indices(grid_in[1], grid_out[1])
    patch_position = patch_position[rows][:, cols].reshape(1, -1, position.shape[-1])
    state["timesformer.embeddings.position_embeddings"] = torch.cat([position[:, :1], patch_position], dim=1)
    if attention_type != "space_only":
        time = state["timesformer.embeddings.time_embeddings"]
        state["timesformer.embeddings.time_embeddings"] = time[:, nearest_indices(4, frames)]
    resized.load_state_dict(state, strict=True)

    pixel_values = clip(frames=frames, height=height, width=width)
    with torch.no_grad():
        torch.testing.assert_close(
            model(pixel_values).logits, resized(pixel_values).logits, atol=ATOL, rtol=0
        )
        changed_shape = model(clip()).logits
    assert not torch.allclose(changed_shape, model(pixel_values).logits)


def test_resize_embeddings_keeps_the_logits_of_the_resized_input(attention_type):
    model = tiny_model(attention_type=attention_type)
    pixel_values = clip(frames=6, height=48, width=32)
    with torch.no_grad():
        expected = model(pixel_values).logits
        model.resize_embeddings(num_frames=6, image_size=(48, 32))
        resized = model(pixel_values).logits
    assert model.config.num_frames == 6 and tuple(model.config.image_size) == (48, 32)
    assert model.timesformer.embeddings.position_embeddings.shape[1] == 1 + 6 * 4
    if attention_type != "space_only":
        assert model.timesformer.embeddings.time_embeddings.shape[1] == 6
    torch.testing.assert_close(resized, expected, atol=ATOL, rtol=0)


def test_space_only_averages_frames_before_the_final_norm():
    model = tiny_model(attention_type="space_only")
    pixel_values = clip(batch=2, frames=3)
    with torch.no_grad():
        logits = model(pixel_values).logits
        # By hand: run each frame alone, average the per-frame CLS tokens before the final LayerNorm.
        frame_cls = [
            model.timesformer(pixel_values[:, t : t + 1], output_hidden_states=True).hidden_states[-1][:, 0]
            for t in range(3)
        ]
        expected = model.classifier(model.timesformer.layernorm(torch.stack(frame_cls).mean(0)))
    assert logits.shape == (2, TINY["num_labels"])
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)


def test_sdpa_and_eager_agree(attention_type):
    model = tiny_model(attention_type=attention_type)
    assert model.config._attn_implementation == "sdpa"
    pixel_values = clip()
    with torch.no_grad():
        sdpa = model(pixel_values).logits
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        eager = model(pixel_values).logits
    torch.testing.assert_close(sdpa, eager, atol=ATOL, rtol=0)


@pytest.mark.slow
def test_flex_attention_agrees_with_sdpa(attention_type):
    model = tiny_model(attention_type=attention_type)
    pixel_values = clip()
    with torch.no_grad():
        sdpa = model(pixel_values).logits
        model.set_attn_implementation("flex_attention")
        assert model.config._attn_implementation == "flex_attention"
        flex = model(pixel_values).logits
    torch.testing.assert_close(flex, sdpa, atol=ATOL, rtol=0)


def test_gradients_with_and_without_checkpointing_agree(attention_type):
    model = tiny_model(attention_type=attention_type).train()
    pixel_values, labels = clip(), torch.tensor([1, 3])

    def gradients():
        model.zero_grad()
        model(pixel_values, labels=labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = gradients()
    # `activation_checkpointing_enable` is the newer name of `gradient_checkpointing_enable`.
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    assert model.timesformer.encoder.layer[0].gradient_checkpointing
    checkpointed = gradients()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=ATOL, rtol=0, msg=name)


# --- the CLS token alone in the last layer ----------------------------------------------------------------------


def test_classifier_updates_only_the_cls_token_in_its_last_layer(attention_type):
    model = tiny_model(attention_type=attention_type)
    mlp_inputs = []
    for layer in model.timesformer.encoder.layer:
        layer.intermediate.dense.register_forward_hook(
            lambda module, args, _: mlp_inputs.append(args[0].shape[:2])
        )
    pixel_values = clip()
    with torch.no_grad():
        logits = model(pixel_values).logits
        every_token = model(pixel_values, output_hidden_states=True).logits
    torch.testing.assert_close(logits, every_token, atol=ATOL, rtol=0)
    sequences, tokens = (2 * 4, 1 + 16) if attention_type == "space_only" else (2, 1 + 16 * 4)
    assert mlp_inputs[:2] == [(sequences, tokens), (sequences, 1)]  # layer 1, then the last layer
    if attention_type != "space_only":
        reference = transformers.TimesformerForVideoClassification(
            transformers.TimesformerConfig(**{**TINY, "attention_type": attention_type})
        ).eval()
        reference.load_state_dict(model.state_dict(), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(logits, reference(pixel_values).logits, atol=ATOL, rtol=0)


def test_training_with_the_cls_token_alone_in_the_last_layer_gives_the_same_gradients(attention_type):
    model = tiny_model(attention_type=attention_type).train()
    pixel_values, labels = clip(), torch.tensor([1, 3])

    def gradients(**kwargs):
        model.zero_grad()
        model(pixel_values, labels=labels, **kwargs).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    every_token = gradients(output_hidden_states=True)
    for name, grad in gradients().items():
        torch.testing.assert_close(grad, every_token[name], atol=ATOL, rtol=0, msg=name)


def test_backbone_cls_token_only_gives_the_same_pooled_output(attention_type):
    model = tiny_model(attention_type=attention_type).timesformer
    pixel_values = clip()
    with torch.no_grad():
        every_token, cls_only = model(pixel_values), model(pixel_values, cls_token_only=True)
    assert cls_only.last_hidden_state.shape == (2, 1, TINY["hidden_size"])
    torch.testing.assert_close(cls_only.pooler_output, every_token.pooler_output, atol=ATOL, rtol=0)
    with pytest.raises(InputError, match="cls_token_only=True computes the final CLS token alone"):
        model(pixel_values, cls_token_only=True, output_attentions=True)


# --- outputs --------------------------------------------------------------------------------------------------


def test_attention_and_hidden_state_shapes():
    batch, frames, patches, heads = 2, 4, 16, TINY["num_attention_heads"]
    with torch.no_grad():
        divided = tiny_model()(clip(), output_attentions=True, output_hidden_states=True)
        joint = tiny_model(attention_type="joint_space_time")(clip(), output_attentions=True)
        space = tiny_model(attention_type="space_only")(
            clip(), output_attentions=True, output_hidden_states=True
        )
    layers = TINY["num_hidden_layers"]
    assert len(divided.attentions) == len(divided.temporal_attentions) == layers
    assert divided.attentions[0].shape == (batch * frames, heads, 1 + patches, 1 + patches)
    assert divided.temporal_attentions[0].shape == (batch * patches, heads, frames, frames)
    torch.testing.assert_close(
        divided.temporal_attentions[0].sum(-1), torch.ones(batch * patches, heads, frames)
    )
    assert len(divided.hidden_states) == layers + 1
    assert divided.hidden_states[0].shape == (batch, 1 + patches * frames, TINY["hidden_size"])
    assert joint.attentions[0].shape == (batch, heads, 1 + patches * frames, 1 + patches * frames)
    assert joint.temporal_attentions is None
    assert space.attentions[0].shape == (batch * frames, heads, 1 + patches, 1 + patches)
    assert space.hidden_states[0].shape == (batch * frames, 1 + patches, TINY["hidden_size"])


def test_base_model_outputs_and_return_dict_false():
    model = tiny_model()
    pixel_values = clip()
    with torch.no_grad():
        outputs = model.timesformer(pixel_values)
        as_tuple = model(pixel_values, return_dict=False)
    assert outputs.last_hidden_state.shape == (2, 1 + 16 * 4, 32)
    torch.testing.assert_close(outputs.pooler_output, outputs.last_hidden_state[:, 0])
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], model(pixel_values).logits)


@pytest.mark.parametrize(
    "num_labels, labels, problem_type",
    [
        (5, torch.tensor([0, 4]), "single_label_classification"),
        (5, torch.tensor([[0.0, 1, 0, 1, 0], [1, 0, 0, 0, 0]]), "multi_label_classification"),
        (1, torch.tensor([0.5, -1.0]), "regression"),
    ],
)
def test_losses(num_labels, labels, problem_type):
    model = tiny_model(num_labels=num_labels)
    outputs = model(clip(), labels=labels)
    assert model.config.problem_type == problem_type
    assert outputs.loss.ndim == 0 and torch.isfinite(outputs.loss)
    outputs.loss.backward()
    assert model.classifier.weight.grad.abs().sum() > 0


class _Clips(torch.utils.data.Dataset):
    """Four fixed clips and their labels, as dicts for `Trainer`."""

    def __init__(self, labels: torch.Tensor) -> None:
        self.pixel_values, self.labels = clip(batch=len(labels), seed=3), labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixel_values[index], "labels": self.labels[index]}


def _one_optimizer_step(tmp_path, num_labels, labels, batch_size, accumulation):
    """Weights and logged loss after one SGD step of `Trainer` over the four clips."""
    from transformers import Trainer, TrainingArguments

    model = tiny_model(num_labels=num_labels).train()
    arguments = TrainingArguments(
        output_dir=str(tmp_path / f"run-{batch_size}"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=_Clips(labels))
    train_loss = trainer.train().training_loss
    return model.state_dict(), train_loss


@pytest.mark.parametrize(
    "num_labels, labels",
    [
        (5, torch.tensor([0, 4, 2, 2])),
        (5, torch.tensor([[0.0, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 0, 0]])),
        (1, torch.tensor([0.5, -1.0, 2.0, 0.0])),
    ],
    ids=["single-label", "multi-label", "regression"],
)
def test_gradient_accumulation_is_exact(tmp_path, num_labels, labels):
    """One step on a batch of 4 equals two micro-batches of 2 with accumulation 2: same weights, same loss."""
    whole = _one_optimizer_step(tmp_path, num_labels, labels, batch_size=4, accumulation=1)
    accumulated = _one_optimizer_step(tmp_path, num_labels, labels, batch_size=2, accumulation=2)
    initial = tiny_model(num_labels=num_labels).state_dict()
    for name, weight in whole[0].items():
        torch.testing.assert_close(accumulated[0][name], weight, atol=1e-5, rtol=0)
    # the step changed the weights
    assert not torch.equal(whole[0]["classifier.weight"], initial["classifier.weight"])
    assert accumulated[1] == pytest.approx(whole[1], rel=1e-5)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((4, 3, 32, 32), "must have shape"),
        ((1, 4, 1, 32, 32), "channels"),
        ((1, 4, 3, 30, 32), "not a multiple of the patch size"),
    ],
)
def test_bad_input_raises_a_clear_error(shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_model()(torch.randn(shape))


def test_torch_compile_fullgraph_has_no_graph_break():
    model = tiny_model()
    pixel_values = clip()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(
            compiled(pixel_values).logits, model(pixel_values).logits, atol=ATOL, rtol=0
        )


# --- saving, loading, interoperability ------------------------------------------------------------------------


def test_loads_a_repo_saved_by_transformers_timesformer(tmp_path):
    reference = randomize_(
        transformers.TimesformerForVideoClassification(transformers.TimesformerConfig(**TINY)), seed=3
    )
    reference.save_pretrained(tmp_path)
    with transformers_log() as log:
        model, info = TimeSformerForVideoClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert "model of type `timesformer`" not in log.out
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    pixel_values = clip()
    with torch.no_grad():
        torch.testing.assert_close(
            model(pixel_values).logits, reference(pixel_values).logits, atol=ATOL, rtol=0
        )


def test_transformers_timesformer_loads_a_repo_saved_by_this_package(tmp_path):
    model = tiny_model(seed=4)
    model.save_pretrained(tmp_path)
    reference, info = transformers.TimesformerForVideoClassification.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    pixel_values = clip()
    with torch.no_grad():
        torch.testing.assert_close(
            reference(pixel_values).logits, model(pixel_values).logits, atol=ATOL, rtol=0
        )


@pytest.mark.parametrize("saved_by", ["timesformer_hf", "transformers"])
def test_bare_model_from_a_classification_repo_says_so_in_one_line(tmp_path, saved_by, caplog):
    if saved_by == "transformers":
        classifier = transformers.TimesformerForVideoClassification(transformers.TimesformerConfig(**TINY))
        classifier = randomize_(classifier, seed=8)
    else:
        classifier = tiny_model(seed=8)
    classifier.save_pretrained(tmp_path)
    with caplog.at_level(logging.INFO, logger="timesformer_hf"), transformers_log() as log:
        model = TimeSformerModel.from_pretrained(tmp_path)
    assert "LOAD REPORT" not in log.out and "UNEXPECTED" not in log.out
    assert package_log(caplog) == [
        f"Loaded the backbone of {tmp_path}; its classifier (5 labels) is not used."
    ]
    with torch.no_grad():
        expected = classifier.timesformer(clip()).last_hidden_state
        torch.testing.assert_close(model(clip()).last_hidden_state, expected, atol=ATOL, rtol=0)


def test_auto_classes_and_device_map(tmp_path):
    from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

    model = tiny_model(seed=5)
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), TimeSformerConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), TimeSformerModel)
    loaded = AutoModelForVideoClassification.from_pretrained(tmp_path, device_map="auto")
    assert isinstance(loaded, TimeSformerForVideoClassification)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clip()).logits, model(clip()).logits, atol=ATOL, rtol=0)


def test_trust_remote_code_load_uses_the_repos_own_code(tmp_path):
    model = tiny_model(seed=6)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "modeling_timesformer.py").exists() and (
        tmp_path / "configuration_timesformer.py"
    ).exists()
    torch.save(clip(), tmp_path / "clip.pt")
    with torch.no_grad():
        torch.save(model(clip()).logits, tmp_path / "expected.pt")
    script = f"""
import sys, torch
from transformers import AutoModel, AutoModelForVideoClassification
repo = {str(tmp_path)!r}
model = AutoModelForVideoClassification.from_pretrained(repo, trust_remote_code=True).eval()
assert "timesformer_hf" not in sys.modules, "the package must not be imported"
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
with torch.no_grad():
    diff = (model(torch.load(repo + "/clip.pt")).logits - torch.load(repo + "/expected.pt")).abs().max().item()
assert diff <= 1e-5, diff
base = AutoModel.from_pretrained(repo, trust_remote_code=True)
print(type(model).__name__, type(base).__name__, type(model).__module__)
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TimeSformerForVideoClassification TimeSformerModel transformers_modules" in result.stdout


# --- full size (slow) -----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "attention_type, millions", [("divided_space_time", 121.4), ("joint_space_time", 85.9)]
)
def test_full_size_parameter_count_matches_the_paper(attention_type, millions):
    model = TimeSformerModel(TimeSformerConfig(attention_type=attention_type))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / 1e6 - millions) <= 0.3, count


@pytest.mark.slow
def test_full_size_compiles_with_inductor():
    model = TimeSformerForVideoClassification(TimeSformerConfig(num_labels=400)).eval()
    pixel_values = torch.randn(1, 8, 3, 224, 224)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(
            compiled(pixel_values).logits, model(pixel_values).logits, atol=1e-4, rtol=0
        )


# --- initialisation from an image ViT ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["model", "directory", "classifier", "classifier directory"])
def test_from_vit_on_repeated_image_returns_the_vit_cls_features(tmp_path, layout, caplog):
    vit_config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    vit = randomize_(transformers.ViTModel(vit_config), seed=7)
    source = vit
    if layout.startswith("classifier"):
        source = transformers.ViTForImageClassification(vit_config)  # 2 labels
        source.vit.load_state_dict(vit.state_dict(), strict=False)
    if layout.endswith("directory"):
        source.save_pretrained(tmp_path)
        source = tmp_path
    with caplog.at_level(logging.INFO, logger="timesformer_hf"), transformers_log() as log:
        model = TimeSformerForVideoClassification.from_vit(source, num_frames=3, num_labels=7).eval()
    assert "LOAD REPORT" not in log.out and "UNEXPECTED" not in log.out and "MISSING" not in log.out
    (line,) = package_log(caplog)
    assert line.startswith("Initialised TimeSformerForVideoClassification from the ViT")
    assert ("its classifier (2 labels) is not used" in line) == layout.startswith("classifier")
    assert model.config.layer_norm_eps == vit_config.layer_norm_eps and model.config.num_labels == 7
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = vit(image).last_hidden_state[:, 0]
        features = model.timesformer(image.unsqueeze(1).expand(-1, 3, -1, -1, -1)).pooler_output
    torch.testing.assert_close(features, expected, atol=ATOL, rtol=0)
    layer = model.timesformer.encoder.layer[1]
    assert torch.equal(layer.temporal_attention.attention.qkv.weight, layer.attention.attention.qkv.weight)
    assert not layer.temporal_dense.weight.any() and not model.timesformer.embeddings.time_embeddings.any()
