"""Converters: safe checkpoint reading, YAML `_BASE_` chains, key mapping, bad files, `.pth`, image checkpoints,
the official Swin window behaviour and the `convert` command."""

import builtins
import errno
import json
import os
import pickle
import re
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_config
from safetensors.torch import load_file
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from modeling_m2f_video.backbone_adaptations import OfficialSwinLayer, pad_small_swin_windows
from modeling_m2f_video.cli import main
from modeling_m2f_video.conversion import (
    CheckpointError,
    ConfigError,
    ConversionError,
    KeyMappingError,
    UnsafeCheckpointError,
    convert_image_checkpoint,
    convert_official_checkpoint,
)
from modeling_m2f_video.conversion.checkpoint_io import load_checkpoint
from modeling_m2f_video.conversion.detectron2_config import load_yaml_config, video_config_from_detectron2
from modeling_m2f_video.conversion.key_mapping import swin_relative_position_index
from modeling_m2f_video.conversion.official import converted_tensors, plan_conversion, target_specs

FIXTURES = Path(__file__).parent / "fixtures/official"
R50 = FIXTURES / "r50_slim"
SWIN = FIXTURES / "swin_slim"


def _official_state(fixture: Path) -> OrderedDict:
    """The fixture's official weights as name -> numpy array."""
    return OrderedDict((name, tensor.numpy()) for name, tensor in load_checkpoint(fixture / "model_final.pkl").items())


def _write_model_zoo_pickle(path: Path, state: dict) -> Path:
    with open(path, "wb") as file:
        pickle.dump({"model": OrderedDict(state), "__author__": "test"}, file, protocol=4)
    return path


def _write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _fixture_config(fixture: Path, tmp_path: Path, **overrides) -> Path:
    """The fixture's merged YAML with dotted-key overrides, written to tmp_path."""
    data = load_yaml_config(fixture / "config.yaml")
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return _write_yaml(tmp_path / "config.yaml", data)


# ---------------------------------------------------------------------------------------------------------------
# Reading checkpoints safely
# ---------------------------------------------------------------------------------------------------------------


class _RunsShellCommand:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _RunsCode:
    """Unpickling this calls builtins.exec on Python source: code smuggled into a checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("payload", [_RunsShellCommand, _RunsCode])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, payload):
    marker = tmp_path / "executed"
    weights = {"model": OrderedDict(a=np.zeros(2, np.float32), b=payload(marker)), "__author__": "x"}
    checkpoint = tmp_path / "model.pkl"
    checkpoint.write_bytes(pickle.dumps(weights, protocol=4))
    with pytest.raises(
        UnsafeCheckpointError, match="refused to load the global `(posix|os|builtins)\\.(system|exec)`"
    ):
        load_checkpoint(checkpoint)
    assert not marker.exists()


def test_bad_checkpoints_write_nothing(tmp_path):
    output = tmp_path / "out"
    marker = tmp_path / "executed"
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes((R50 / "model_final.pkl").read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        convert_official_checkpoint(R50 / "config.yaml", truncated, output)
    malicious = tmp_path / "malicious.pkl"
    malicious.write_bytes(pickle.dumps({"model": {"x": _RunsShellCommand(marker)}}, protocol=2))
    with pytest.raises(UnsafeCheckpointError):
        convert_official_checkpoint(R50 / "config.yaml", malicious, output)
    assert not marker.exists()
    assert not output.exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_pth_with_code_is_refused(tmp_path):
    checkpoint = tmp_path / "model.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": _RunsShellCommand(tmp_path / "executed")}, checkpoint)
    with pytest.raises(UnsafeCheckpointError, match="weights_only"):
        load_checkpoint(checkpoint)
    assert not (tmp_path / "executed").exists()


# ---------------------------------------------------------------------------------------------------------------
# Mapping errors: every problem listed, nothing written
# ---------------------------------------------------------------------------------------------------------------


def test_missing_keys_are_listed(tmp_path):
    state = _official_state(R50)
    dropped = ["sem_seg_head.predictor.query_feat.weight", "backbone.res3.1.conv2.norm.running_var"]
    for name in dropped:
        del state[name]
    checkpoint = _write_model_zoo_pickle(tmp_path / "model.pkl", state)
    with pytest.raises(KeyMappingError) as error:
        convert_official_checkpoint(R50 / "config.yaml", checkpoint, tmp_path / "out")
    message = str(error.value)
    assert "2 model keys missing from the checkpoint" in message
    assert "model.transformer_module.queries_features.weight" in message
    assert "model.pixel_level_module.encoder.encoder.stages.1.layers.1.layer.1.normalization.running_var" in message
    assert not (tmp_path / "out").exists()


def test_wrong_architecture_lists_mis_shaped_and_unmapped_keys(tmp_path):
    wider_ffn = _fixture_config(R50, tmp_path, **{"MODEL.MASK_FORMER.DIM_FEEDFORWARD": 256})
    with pytest.raises(KeyMappingError, match=r"18 mis-shaped keys") as error:
        convert_official_checkpoint(wider_ffn, R50 / "model_final.pkl", tmp_path / "out")
    assert (
        "transformer_ffn_layers.0.linear1.weight (128, 64) -> model.transformer_module.decoder.layers.0.fc1.weight"
        in str(error.value)
    )
    # A ResNet checkpoint under a Swin config: the ResNet keys are unmapped, the Swin keys missing.
    with pytest.raises(KeyMappingError) as error:
        convert_official_checkpoint(SWIN / "config.yaml", R50 / "model_final.pkl", tmp_path / "out")
    message = str(error.value)
    assert "backbone.stem.conv1.weight" in message and "official keys with no mapping" in message
    assert "model.pixel_level_module.encoder.swin.embeddings.norm.weight" in message
    assert not (tmp_path / "out").exists()


def test_inconsistent_relative_position_index_is_refused(tmp_path):
    state = _official_state(SWIN)
    name = "backbone.layers.2.blocks.1.attn.relative_position_index"
    state[name] = np.flip(state[name], 0).copy()
    checkpoint = _write_model_zoo_pickle(tmp_path / "model.pkl", state)
    with pytest.raises(KeyMappingError, match="relative_position_index differs"):
        convert_official_checkpoint(SWIN / "config.yaml", checkpoint, tmp_path / "out")


def test_relative_position_index_matches_transformers():
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config("swin"))
    block = model.model.pixel_level_module.encoder.swin.encoder.layers[0].blocks[0]
    index = block.attention.relative_position_bias.relative_position_index
    assert torch.equal(index.view(16, 16), swin_relative_position_index(4))


# ---------------------------------------------------------------------------------------------------------------
# Formats, configs and output folder
# ---------------------------------------------------------------------------------------------------------------


def test_pth_checkpoint_gives_the_same_weights(tmp_path):
    from_pkl = convert_official_checkpoint(R50 / "config.yaml", R50 / "model_final.pkl", tmp_path / "pkl")
    checkpoint = tmp_path / "model_final.pth"
    torch.save({"model": {name: torch.from_numpy(array) for name, array in _official_state(R50).items()}}, checkpoint)
    from_pth = convert_official_checkpoint(R50 / "config.yaml", checkpoint, tmp_path / "pth")
    expected, converted = load_file(from_pkl / "model.safetensors"), load_file(from_pth / "model.safetensors")
    assert expected.keys() == converted.keys()
    assert all(torch.equal(expected[name], converted[name]) for name in expected)


def test_base_chain_resolves_relative_to_each_file(tmp_path):
    """The fixture's merged config split into a 3-file `_BASE_` chain (paths relative to each file) converts to the
    same model; the child's values win over its bases', and nested mappings merge key by key."""
    merged = load_yaml_config(R50 / "config.yaml")
    model = merged.pop("MODEL")
    _write_yaml(tmp_path / "configs/Base.yaml", {**merged, "MODEL": {**model, "SEM_SEG_HEAD": {"NUM_CLASSES": 7}}})
    _write_yaml(
        tmp_path / "configs/video/r50.yaml",
        {"_BASE_": "../Base.yaml", "MODEL": {"SEM_SEG_HEAD": model["SEM_SEG_HEAD"], "MASK_FORMER": {"NHEADS": 2}}},
    )
    child = _write_yaml(
        tmp_path / "other/slim.yaml", {"_BASE_": "../configs/video/r50.yaml", "MODEL": {"MASK_FORMER": {"NHEADS": 4}}}
    )
    assert load_yaml_config(child) == load_yaml_config(R50 / "config.yaml")
    converted = convert_official_checkpoint(child, R50 / "model_final.pkl", tmp_path / "out", dataset="ytvis2021")
    config = json.loads((converted / "config.json").read_text())
    assert config["num_attention_heads"] == 4 and config["id2label"]["0"] == "airplane"


def test_base_chain_errors(tmp_path):
    _write_yaml(tmp_path / "a.yaml", {"_BASE_": "b.yaml"})
    _write_yaml(tmp_path / "b.yaml", {"_BASE_": "a.yaml"})
    with pytest.raises(ConfigError, match="_BASE_ cycle"):
        load_yaml_config(tmp_path / "a.yaml")
    _write_yaml(tmp_path / "c.yaml", {"_BASE_": "missing.yaml"})
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_yaml_config(tmp_path / "c.yaml")


def _official_style_config(tmp_path: Path, backbone: dict, **mask_former) -> Path:
    """A short config written the way the official files are (most keys left to detectron2's defaults)."""
    base = {
        "MODEL": {
            "META_ARCHITECTURE": "VideoMaskFormer",
            "PIXEL_MEAN": [123.675, 116.28, 103.53],
            "PIXEL_STD": [58.395, 57.12, 57.375],
            "SEM_SEG_HEAD": {
                "NAME": "MaskFormerHead",
                "NUM_CLASSES": 40,
                "CONVS_DIM": 256,
                "MASK_DIM": 256,
                "PIXEL_DECODER_NAME": "MSDeformAttnPixelDecoder",
                "IN_FEATURES": "('res2', 'res3', 'res4', 'res5')",
                "TRANSFORMER_ENC_LAYERS": 6,
            },
            "MASK_FORMER": {
                "TRANSFORMER_DECODER_NAME": "VideoMultiScaleMaskedTransformerDecoder",
                "TRANSFORMER_IN_FEATURE": "multi_scale_pixel_decoder",
                "DEC_LAYERS": 10,
                **mask_former,
            },
        },
        "INPUT": {"FORMAT": "RGB", "MIN_SIZE_TEST": 360},
    }
    _write_yaml(tmp_path / "Base.yaml", base)
    return _write_yaml(tmp_path / "variant.yaml", {"_BASE_": "Base.yaml", "MODEL": backbone})


def test_official_style_configs_use_detectron2_defaults(tmp_path):
    resnet = {
        "BACKBONE": {"NAME": "build_resnet_backbone"},
        "RESNETS": {"DEPTH": 101, "STRIDE_IN_1X1": False, "OUT_FEATURES": ["res2", "res3", "res4", "res5"]},
    }
    config = video_config_from_detectron2(load_yaml_config(_official_style_config(tmp_path, resnet)), "ytvis2019")
    assert config.backbone_config.hidden_sizes == [256, 512, 1024, 2048]
    assert config.backbone_config.depths == [3, 4, 23, 3] and config.backbone_config.embedding_size == 64
    assert (config.hidden_dim, config.num_attention_heads, config.dim_feedforward) == (256, 8, 2048)
    assert (config.decoder_layers, config.num_queries, config.encoder_layers) == (10, 100, 6)
    assert config.backbone_frozen_batch_norm and not config.swin_pad_small_windows

    swin = {
        "BACKBONE": {"NAME": "D2SwinTransformer"},
        "SWIN": {"EMBED_DIM": 192, "DEPTHS": [2, 2, 18, 2], "NUM_HEADS": [6, 12, 24, 48], "WINDOW_SIZE": 12},
    }
    config = video_config_from_detectron2(
        load_yaml_config(_official_style_config(tmp_path, swin, NUM_OBJECT_QUERIES=200))
    )
    assert config.backbone_config.window_size == 12 and config.num_queries == 200
    assert config.swin_pad_small_windows and config.backbone_config.out_features == [
        "stage1",
        "stage2",
        "stage3",
        "stage4",
    ]


@pytest.mark.parametrize(
    "backbone, message",
    [
        (
            {
                "BACKBONE": {"NAME": "build_resnet_backbone"},
                "RESNETS": {"OUT_FEATURES": ["res2", "res3", "res4", "res5"]},
            },
            "STRIDE_IN_1X1",
        ),
        ({"BACKBONE": {"NAME": "D2SwinTransformer"}, "SWIN": {"APE": True}}, "APE"),
        ({"BACKBONE": {"NAME": "build_convnext_backbone"}}, "not supported"),
    ],
)
def test_unsupported_configs_are_refused(tmp_path, backbone, message):
    with pytest.raises(ConfigError, match=message):
        video_config_from_detectron2(load_yaml_config(_official_style_config(tmp_path, backbone)))


def test_decoder_input_projections_are_converted(tmp_path):
    """ENFORCE_INPUT_PROJ adds the decoder's 1x1 input projections (`predictor.input_proj.i`)."""
    state = _official_state(R50)
    generator = np.random.default_rng(0)
    for level in range(3):
        state[f"sem_seg_head.predictor.input_proj.{level}.weight"] = generator.normal(size=(64, 64, 1, 1)).astype(
            np.float32
        )
        state[f"sem_seg_head.predictor.input_proj.{level}.bias"] = generator.normal(size=64).astype(np.float32)
    checkpoint = _write_model_zoo_pickle(tmp_path / "model.pkl", state)
    config = _fixture_config(R50, tmp_path, **{"MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ": True})
    converted = load_file(convert_official_checkpoint(config, checkpoint, tmp_path / "out") / "model.safetensors")
    for level in range(3):
        expected = torch.from_numpy(state[f"sem_seg_head.predictor.input_proj.{level}.weight"])
        assert torch.equal(converted[f"model.transformer_module.input_projections.{level}.weight"], expected)


def test_conversion_releases_each_official_tensor_after_use():
    """Streaming: the official tensors are dropped one by one as the converted ones are produced."""
    yaml_config = load_yaml_config(SWIN / "config.yaml")
    config = video_config_from_detectron2(yaml_config)
    source = load_checkpoint(SWIN / "model_final.pkl")
    specs = target_specs(config)
    plan = plan_conversion(source, specs, config)
    plan.raise_if_invalid(SWIN)
    remaining = []
    for _ in converted_tensors(plan, source, specs):
        remaining.append(len(source))
    assert remaining[0] > remaining[len(remaining) // 2] > 0
    # Only the checked (not copied) relative_position_index buffers are left.
    assert all(name.endswith("relative_position_index") for name in source)


def _folder_contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _hidden_siblings(folder: Path) -> list[str]:
    return [path.name for path in folder.parent.iterdir() if path.name.startswith(f".{folder.name}.")]


def test_a_non_empty_output_is_refused_without_overwrite(tmp_path):
    """A user's folder is never written into: refused before the checkpoint is even read."""
    output = tmp_path / "out"
    output.mkdir()
    (output / "README.md").write_text("my notes")
    (output / "config.json").write_text("{}")
    with pytest.raises(ConversionError, match="out: the folder is not empty \\(pass --overwrite"):
        convert_official_checkpoint(R50 / "config.yaml", tmp_path / "not-read.pkl", output)
    assert _folder_contents(output) == {"README.md": b"my notes", "config.json": b"{}"}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert convert_official_checkpoint(R50 / "config.yaml", R50 / "model_final.pkl", empty) == empty


def test_overwrite_replaces_the_whole_folder(tmp_path):
    """No stale file of an earlier run (here: old shards and notes) survives next to the new weights."""
    output = convert_official_checkpoint(R50 / "config.yaml", R50 / "model_final.pkl", tmp_path / "out")
    (output / "model-00001-of-00002.safetensors").write_bytes(b"stale")
    (output / "notes.txt").write_text("stale")
    convert_official_checkpoint(R50 / "config.yaml", R50 / "model_final.pkl", output, overwrite=True, verify=True)
    assert sorted(path.name for path in output.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "video_preprocessor_config.json",
    ]
    assert _hidden_siblings(output) == []


def test_a_failed_overwrite_keeps_the_old_folder(tmp_path, monkeypatch):
    output = convert_official_checkpoint(R50 / "config.yaml", R50 / "model_final.pkl", tmp_path / "out")
    (output / "notes.txt").write_text("keep me")
    before = _folder_contents(output)
    with pytest.raises(KeyMappingError):  # fails while converting
        convert_official_checkpoint(SWIN / "config.yaml", R50 / "model_final.pkl", output, overwrite=True)
    assert _folder_contents(output) == before and _hidden_siblings(output) == []

    rename = Path.rename

    def failing_rename(self, target):  # fails when the new folder is renamed into place
        if self.name.startswith(".out.partial-"):
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(self))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(ConversionError, match="out: cannot write the output folder: Invalid cross-device link"):
        convert_official_checkpoint(R50 / "config.yaml", R50 / "model_final.pkl", output, overwrite=True)
    assert _folder_contents(output) == before and _hidden_siblings(output) == []


def test_overwrite_replaces_only_model_folders_without_the_inputs(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    with pytest.raises(ConversionError, match="replaces only a model folder"):
        convert_official_checkpoint(R50 / "config.yaml", R50 / "model_final.pkl", folder, overwrite=True)
    assert _folder_contents(folder) == {"thesis.tex": b"years of work"}

    output = convert_official_checkpoint(R50 / "config.yaml", R50 / "model_final.pkl", tmp_path / "out")
    checkpoint = Path(shutil.copy(R50 / "model_final.pkl", output / "model_final.pkl"))
    with pytest.raises(ConversionError, match="holds the input .*model_final.pkl"):
        convert_official_checkpoint(R50 / "config.yaml", checkpoint, output, overwrite=True)
    assert checkpoint.is_file()


# ---------------------------------------------------------------------------------------------------------------
# The official Swin window behaviour
# ---------------------------------------------------------------------------------------------------------------


def test_pad_small_swin_windows_keeps_names_and_restores_window_and_shift():
    backbone = Mask2FormerForUniversalSegmentation(tiny_config("swin")).model.pixel_level_module.encoder
    names_before = list(backbone.state_dict())
    last_stage = backbone.swin.encoder.layers[-1]
    last_stage.blocks[0].set_shift_and_window_size((2, 3))  # what transformers does on a small map
    assert last_stage.blocks[0].window_size == 2
    pad_small_swin_windows(backbone)
    assert list(backbone.state_dict()) == names_before
    for stage in backbone.swin.encoder.layers:
        for index, block in enumerate(stage.blocks):
            assert isinstance(block, OfficialSwinLayer)
            assert (block.window_size, block.shift_size) == (4, 0 if index % 2 == 0 else 2)
    last_stage.blocks[0].set_shift_and_window_size((2, 3))
    assert last_stage.blocks[0].window_size == 4


def test_padded_windows_match_the_official_backbone_even_without_always_partition(tmp_path):
    """After `pad_small_swin_windows`, the Swin layers keep window 7 and the shift on the 4x5 stage-4 map even when
    called the way transformers' SwinModel calls them (`always_partition=False`), giving the official features."""
    output = convert_official_checkpoint(SWIN / "config.yaml", SWIN / "model_final.pkl", tmp_path / "out")
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(output).eval()
    backbone = model.model.pixel_level_module.encoder
    official = load_file(SWIN / "outputs.safetensors")
    with torch.no_grad():
        swin_outputs = backbone.swin(
            official["images"],
            always_partition=False,
            output_hidden_states=True,
            output_hidden_states_before_downsampling=True,
        )
        stage4 = swin_outputs.reshaped_hidden_states[-1].permute(0, 2, 3, 1)
        res5 = backbone.hidden_states_norms["stage4"](stage4).permute(0, 3, 1, 2)
    assert (res5 - official["backbone.res5"]).abs().max() <= 1e-4


# ---------------------------------------------------------------------------------------------------------------
# Image checkpoints
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def image_model_dir(tmp_path) -> Path:
    """A tiny random transformers image Mask2Former saved to a folder."""
    values = tiny_config("resnet", num_labels=3).to_dict()
    for key in ("model_type", "transformers_version", "architectures", "_name_or_path"):
        values.pop(key, None)
    values.update(num_frames=None, test_top_k=None)
    image_config = Mask2FormerConfig.from_dict({k: v for k, v in values.items() if v is not None})
    image_config.id2label = {0: "cat", 1: "dog", 2: "fox"}
    image_config.label2id = {name: index for index, name in image_config.id2label.items()}
    model = Mask2FormerForUniversalSegmentation(image_config).eval()
    model.save_pretrained(tmp_path / "image")
    return tmp_path / "image"


def test_image_checkpoint_keeps_every_weight(image_model_dir, tmp_path):
    output = convert_image_checkpoint(image_model_dir, tmp_path / "video", verify=True)
    image_model = Mask2FormerForUniversalSegmentation.from_pretrained(image_model_dir).eval()
    video_model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(output).eval()
    image_state, video_state = image_model.state_dict(), video_model.state_dict()
    assert image_state.keys() == video_state.keys()
    assert all(torch.equal(image_state[name], video_state[name]) for name in image_state)
    assert video_model.config.id2label == {0: "cat", 1: "dog", 2: "fox"}
    frames = torch.randn(3, 3, 70, 90)
    with torch.no_grad():
        video_outputs = video_model(frames[None], output_hidden_states=True)
        image_outputs = image_model.model.pixel_level_module(frames, output_hidden_states=True)
    assert torch.allclose(
        video_outputs.pixel_decoder_last_hidden_state, image_outputs.decoder_last_hidden_state, atol=1e-5
    )


def test_image_checkpoint_with_a_new_label_set(image_model_dir, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"0": "person", "1": "car", "2": "bird", "3": "boat", "4": "horse"}))
    output = convert_image_checkpoint(image_model_dir, tmp_path / "video", num_labels=5, id2label=labels)
    image_state = Mask2FormerForUniversalSegmentation.from_pretrained(image_model_dir).state_dict()
    video_model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(output)
    assert video_model.config.id2label[4] == "horse"
    assert video_model.class_predictor.weight.shape == (6, 32)
    assert video_model.criterion.empty_weight.shape == (6,)
    video_state = video_model.state_dict()
    head = ("class_predictor.weight", "class_predictor.bias", "criterion.empty_weight")
    assert all(torch.equal(image_state[name], video_state[name]) for name in image_state if name not in head)
    # Same names, same count, but different classes: the head is re-initialised too.
    renamed = convert_image_checkpoint(image_model_dir, tmp_path / "renamed", id2label={0: "a", 1: "b", 2: "c"})
    renamed_model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(renamed)
    assert not torch.equal(renamed_model.class_predictor.weight, image_state["class_predictor.weight"])


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def test_convert_command(tmp_path, capsys, image_model_dir):
    output = tmp_path / "official"
    args = ["convert", "official", "--config", str(R50 / "config.yaml"), "--checkpoint", str(R50 / "model_final.pkl")]
    assert main([*args, "--output", str(output), "--dataset", "ytvis2019"]) == 0
    assert json.loads((output / "config.json").read_text())["id2label"]["0"] == "person"
    assert main([*args, "--output", str(output)]) == 2
    assert "the folder is not empty (pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--output", str(output), "--overwrite"]) == 0
    assert json.loads((output / "config.json").read_text())["id2label"]["0"] == "LABEL_0"
    image_args = ["convert", "image", "--model", str(image_model_dir), "--output", str(tmp_path / "image_video")]
    assert main([*image_args, "--num-labels", "4"]) == 0
    assert json.loads((tmp_path / "image_video" / "config.json").read_text())["model_type"] == "mask2former_video"


def _one_line_error(capsys) -> str:
    """The message of the single `error: ...` line the command printed on stderr (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err.removeprefix("error: ")


def _convert_official(tmp_path, config: Path, checkpoint: Path = R50 / "model_final.pkl", output=None) -> int:
    output = output or tmp_path / "out"
    return main(
        ["convert", "official", "--config", str(config), "--checkpoint", str(checkpoint), "--output", str(output)]
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"MODEL.SEM_SEG_HEAD.NUM_CLASSES": "abc"}, "MODEL.SEM_SEG_HEAD.NUM_CLASSES must be an integer, found 'abc'"),
        ({"MODEL.SEM_SEG_HEAD.NUM_CLASSES": 0}, "MODEL.SEM_SEG_HEAD.NUM_CLASSES must be at least 1, found 0"),
        ({"MODEL.MASK_FORMER.DROPOUT": "high"}, "MODEL.MASK_FORMER.DROPOUT must be a number, found 'high'"),
        ({"MODEL.MASK_FORMER.PRE_NORM": "no"}, "MODEL.MASK_FORMER.PRE_NORM must be true or false, found 'no'"),
        ({"MODEL.RESNETS.OUT_FEATURES": "res2"}, "MODEL.RESNETS.OUT_FEATURES must be a list of str values"),
        ({"MODEL.PIXEL_MEAN": [1.0, 2.0]}, "MODEL.PIXEL_MEAN must have 3 values"),
        ({"MODEL.MASK_FORMER.NHEADS": 5}, r"MODEL.MASK_FORMER.NHEADS \(5\) must divide HIDDEN_DIM \(64\)"),
        ({"MODEL.SEM_SEG_HEAD": 7}, "MODEL.SEM_SEG_HEAD must be a mapping of keys, found 7"),
    ],
)
def test_malformed_config_values_are_one_line_errors(tmp_path, capsys, overrides, message):
    config = _fixture_config(R50, tmp_path, **overrides)
    assert _convert_official(tmp_path, config) == 2
    error = _one_line_error(capsys)
    assert error.startswith(f"{config}: ") and re.search(message, error), error
    assert not (tmp_path / "out").exists()


def test_unreadable_config_files_are_one_line_errors(tmp_path, capsys):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00binary")
    assert _convert_official(tmp_path, binary) == 2
    assert _one_line_error(capsys) == f"{binary}: not a text file (not UTF-8 at byte 0)"
    broken = tmp_path / "broken.yaml"
    broken.write_text("MODEL: [unclosed")
    assert _convert_official(tmp_path, broken) == 2
    assert _one_line_error(capsys).startswith(f"{broken}: not valid YAML")
    missing = tmp_path / "missing.yaml"
    assert _convert_official(tmp_path, missing) == 2
    assert _one_line_error(capsys) == f"{missing}: config file not found"


def test_bad_checkpoints_are_one_line_errors(tmp_path, capsys):
    broken = tmp_path / "broken.pkl"
    broken.write_bytes((R50 / "model_final.pkl").read_bytes()[:5000])
    assert _convert_official(tmp_path, R50 / "config.yaml", broken) == 2
    assert _one_line_error(capsys).startswith(f"{broken}: not a readable weights pickle (truncated or corrupt?)")
    missing = tmp_path / "missing.pkl"
    assert _convert_official(tmp_path, R50 / "config.yaml", missing) == 2
    assert _one_line_error(capsys) == f"{missing}: no such checkpoint file"
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    output = blocker / "out"
    assert _convert_official(tmp_path, R50 / "config.yaml", output=output) == 2
    assert _one_line_error(capsys) == f"{output}: cannot create the output folder: {blocker} is not a folder"
    assert _convert_official(tmp_path, R50 / "config.yaml", output=blocker) == 2
    assert _one_line_error(capsys) == f"{blocker}: exists and is not a folder"


def test_bad_image_model_sources_are_one_line_errors(tmp_path, capsys, image_model_dir):
    def convert_image(model, *options) -> int:
        capsys.readouterr()  # drop what setting up printed (progress bars)
        return main(["convert", "image", "--model", str(model), "--output", str(tmp_path / "out"), *options])

    missing = tmp_path / "no" / "such" / "folder"
    assert convert_image(missing) == 2
    assert _one_line_error(capsys) == f"{missing}: no such model folder"
    assert convert_image(tmp_path) == 2
    assert _one_line_error(capsys) == f"{tmp_path}: not a transformers model folder (no config.json)"
    video = tmp_path / "video"
    Mask2FormerVideoForVideoInstanceSegmentation(tiny_config()).save_pretrained(video)
    assert convert_image(video) == 2
    assert "holds a 'mask2former_video' model, not an image Mask2Former" in _one_line_error(capsys)
    labels = tmp_path / "labels.json"
    labels.write_text("{not json")
    assert convert_image(image_model_dir, "--id2label", str(labels)) == 2
    assert _one_line_error(capsys).startswith(f"{labels}: not valid JSON")
    assert convert_image(image_model_dir, "--id2label", str(tmp_path / "missing.json")) == 2
    assert _one_line_error(capsys) == f"{tmp_path / 'missing.json'}: no such file"
    assert convert_image(image_model_dir, "--num-labels", "0") == 2
    assert _one_line_error(capsys) == "--num-labels must be at least 1, found 0"
    assert not (tmp_path / "out").exists()
