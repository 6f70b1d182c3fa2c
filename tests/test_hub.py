"""Model cards, the remote-code export and the upload command (`modeling_m2f_video.hub`), all offline."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import transformers
from conftest import tiny_config
from huggingface_hub import ModelCard
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

from modeling_m2f_video import (
    Mask2FormerVideoConfig,
    Mask2FormerVideoForVideoInstanceSegmentation,
    Mask2FormerVideoModel,
    Mask2FormerVideoProcessor,
)
from modeling_m2f_video import model_cards as cards
from modeling_m2f_video.cli import main
from modeling_m2f_video.commands.hub import _size_text
from modeling_m2f_video.configuration import PRESETS
from modeling_m2f_video.hub import remote_code, upload

EVALUATED = cards.YouTubeVISResults("ytvis2019", {"AP": 47.1, "AP50": 70.2, "AP75": 51.3, "AR1": 44.0, "AR10": 55.5})


def python_blocks(markdown: str) -> list[str]:
    """The code of every ```python block of a Markdown text."""
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def one_line_error(capsys) -> str:
    """The message of the single `error: ...` line a command printed on stderr (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err.removeprefix("error: ")


def listed_files(out: str) -> set[str]:
    """The file names a command listed, one `  name  size` line each."""
    return {line.split()[0] for line in out.splitlines() if line.startswith("  ")}


def make_video(seed: int = 0) -> np.ndarray:
    """A small (T, H, W, 3) uint8 clip."""
    return np.random.default_rng(seed).integers(0, 256, size=(3, 48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random model folder with its processor and card, written by `save_pretrained_with_card`."""
    torch.manual_seed(0)
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config()).eval()
    processor = Mask2FormerVideoProcessor(size={"shortest_edge": 64, "longest_edge": 128})
    folder = tmp_path_factory.mktemp("hub") / "model"
    return cards.save_pretrained_with_card(model, processor, folder, how_made="A random tiny model for tests.")


@pytest.fixture(scope="module")
def exported_dir(model_dir: Path) -> Path:
    return remote_code.export_hub_folder(model_dir, model_dir.parent / "exported")


# ----------------------------------------------------------------------------------------------------------------
# Model cards
# ----------------------------------------------------------------------------------------------------------------


def test_card_metadata_parses_back(tmp_path):
    card = cards.build_model_card(
        tiny_config(),
        how_made="Trained on the synthetic set.",
        base_model="facebook/mask2former-swin-tiny-coco-instance",
        eval_results=EVALUATED,
        reported_results=cards.paper_results("r50-ytvis2019"),
    )
    card.save(tmp_path / "README.md")
    data = ModelCard.load(tmp_path / "README.md").data

    assert data.to_dict() == card.data.to_dict()
    assert data.license == "apache-2.0"
    assert data.library_name == "transformers"
    assert data.pipeline_tag == cards.HUB_PIPELINE_TAG
    assert data.tags == ["video-instance-segmentation", "mask2former", "youtube-vis"]
    assert data.datasets == ["youtube-vis-2019"]
    assert data.base_model == "facebook/mask2former-swin-tiny-coco-instance"
    measured = {result.metric_name: result.metric_value for result in data.eval_results}
    assert measured == dict(EVALUATED.metrics)  # the model-index holds the measured numbers
    assert {result.dataset_name for result in data.eval_results} == {"YouTube-VIS 2019"}
    assert all(result.source_url is None for result in data.eval_results)


def test_card_marks_paper_numbers_as_reported(tmp_path):
    config = Mask2FormerVideoConfig.from_preset("swin-large-ytvis2021")
    card = cards.build_model_card(
        config,
        how_made="Converted from the official checkpoint `model_final_4da256.pkl`.",
        reported_results=cards.paper_results(cards.preset_of(config)),
        license=cards.OFFICIAL_WEIGHTS_LICENSE,
    )
    card.save(tmp_path / "README.md")
    data = ModelCard.load(tmp_path / "README.md").data

    (result,) = data.eval_results
    assert (result.metric_type, result.metric_name, result.metric_value) == ("ap", "AP (reported)", 52.6)
    assert result.source_url == cards.MODEL_ZOO_URL and "reported" in result.source_name
    assert data.model_name == "mask2former-video-swin-large-ytvis2021"
    assert data.license == "cc-by-nc-4.0" and data.datasets == ["youtube-vis-2021"]
    assert "| reported ([Mask2Former model zoo]" in card.text and "| 52.6 |" in card.text


def test_card_without_results_has_no_model_index(tmp_path):
    path = cards.save_model_card(tmp_path, tiny_config(), how_made="Made by hand.")
    data = ModelCard.load(path).data
    assert data.eval_results is None and data.model_name is None and data.datasets is None
    assert "model-index" not in path.read_text() and "## Results" not in path.read_text()


def test_card_has_citations_usage_and_how_it_was_made():
    text = cards.build_model_card(tiny_config(), how_made="Converted with `m2f-video convert official`.").text
    assert "Masked-attention Mask Transformer for Universal Image Segmentation" in text
    assert "Mask2Former for Video Instance Segmentation" in text and "arXiv:2112.10764" in text
    assert "## How this folder was made\n\nConverted with `m2f-video convert official`." in text
    assert "## Usage" in text and cards.PLACEHOLDER_MODEL_ID in text


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_has_its_paper_result(preset):
    config = Mask2FormerVideoConfig.from_preset(preset)
    assert cards.preset_of(config) == preset
    assert cards.paper_results(preset).metrics["AP"] == cards.PAPER_AP[preset]


def test_custom_configs_match_no_preset():
    assert cards.preset_of(tiny_config()) is None
    with pytest.raises(ValueError, match="No reported result"):
        cards.paper_results("r50-coco")


def test_results_are_validated():
    with pytest.raises(ValueError, match="dataset"):
        cards.YouTubeVISResults("ovis", {"AP": 1.0})
    with pytest.raises(ValueError, match="metrics"):
        cards.YouTubeVISResults("ytvis2021", {"mAP": 1.0})


def test_card_usage_snippet_runs(model_dir, capsys):
    snippet = python_blocks((model_dir / "README.md").read_text())[0]
    exec(snippet.replace(cards.PLACEHOLDER_MODEL_ID, str(model_dir)), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == tiny_config().test_top_k and "masks (4, 240, 320)" in printed[0]


def test_save_pretrained_with_card_without_processor(tmp_path):
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config())
    folder = cards.save_pretrained_with_card(model, None, tmp_path / "out", how_made="Test.")
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]


# ----------------------------------------------------------------------------------------------------------------
# Remote code
# ----------------------------------------------------------------------------------------------------------------


class _DropImports(ast.NodeTransformer):
    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.Pass:
        return ast.Pass()


def _without_import_froms(source: str) -> str:
    return ast.dump(_DropImports().visit(ast.parse(source)))


def test_remote_code_is_the_package_code_with_relative_imports():
    sources = remote_code.remote_code_sources()
    assert set(remote_code.REMOTE_MODULES) <= {name.removesuffix(".py") for name in sources}
    for module, flat in remote_code.flat_module_names().items():
        generated = sources[f"{flat}.py"]
        tree = ast.parse(generated)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 1 or not node.module.startswith("modeling_m2f_video"), (flat, node.lineno)
                if node.level:
                    assert f"{node.module}.py" in sources, (flat, node.module)
        original, _ = remote_code._module_source(module)
        assert _without_import_froms(generated) == _without_import_froms(original), module


def test_package_reexports_are_resolved_to_their_modules():
    assert remote_code._defining_module("modeling_m2f_video.configuration", "Mask2FormerVideoConfig") == (
        "modeling_m2f_video.configuration.configuration_m2f_video"
    )
    assert remote_code._defining_module("modeling_m2f_video.configuration", "PRESETS") == (
        "modeling_m2f_video.configuration.presets"
    )


def test_export_writes_auto_maps_and_card(exported_dir):
    config = json.loads((exported_dir / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_mask2former_video.Mask2FormerVideoConfig",
        "AutoModel": "modeling_mask2former_video.Mask2FormerVideoModel",
        "AutoModelForInstanceSegmentation": "modeling_mask2former_video.Mask2FormerVideoForVideoInstanceSegmentation",
    }
    task = config["custom_pipelines"]["video-instance-segmentation"]
    assert task["impl"] == "pipeline_video_instance_segmentation.VideoInstanceSegmentationPipeline"
    assert task["pt"] == ["AutoModelForInstanceSegmentation"]
    processor = json.loads((exported_dir / "video_preprocessor_config.json").read_text())
    assert processor["auto_map"] == {
        "AutoVideoProcessor": "video_processing_mask2former_video.Mask2FormerVideoProcessor"
    }
    card = ModelCard.load(exported_dir / "README.md")
    assert "custom_code" in card.data.tags and cards.REMOTE_USAGE_MARKER not in card.text
    assert "trust_remote_code=True" in card.text
    assert (exported_dir / "model.safetensors").read_bytes() == (
        exported_dir.parent / "model" / "model.safetensors"
    ).read_bytes()


def test_export_refuses_bad_folders(model_dir, exported_dir, tmp_path):
    with pytest.raises(remote_code.HubError, match="not empty"):
        remote_code.export_hub_folder(model_dir, exported_dir)
    with pytest.raises(remote_code.HubError, match="must differ from the model folder"):
        remote_code.export_hub_folder(model_dir, model_dir, overwrite=True)
    source = tmp_path / "source"
    source.mkdir()
    with pytest.raises(remote_code.HubError, match="no config.json"):
        remote_code.export_hub_folder(source, tmp_path / "out")
    (source / "config.json").write_text(json.dumps({"model_type": "mask2former"}))
    with pytest.raises(remote_code.HubError, match="not 'mask2former_video'"):
        remote_code.export_hub_folder(source, tmp_path / "out")
    shutil.copy(model_dir / "config.json", source / "config.json")
    (source / "pytorch_model.bin").write_bytes(b"a pickle")
    with pytest.raises(remote_code.HubError, match="no model.safetensors .* never exported"):
        remote_code.export_hub_folder(source, tmp_path / "out")
    (source / "config.json").write_text("{broken")
    with pytest.raises(remote_code.HubError, match="config.json: not valid JSON"):
        remote_code.export_hub_folder(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_creates_missing_processor_config_and_card(tmp_path):
    Mask2FormerVideoForVideoInstanceSegmentation(tiny_config()).save_pretrained(tmp_path / "bare")
    out = remote_code.export_hub_folder(tmp_path / "bare", tmp_path / "out", model_id="org/tiny")
    processor = json.loads((out / "video_preprocessor_config.json").read_text())
    assert processor["size"]["shortest_edge"] == tiny_config().test_shortest_edge and "auto_map" in processor
    text = (out / "README.md").read_text()
    assert '"org/tiny"' in text and cards.PLACEHOLDER_MODEL_ID not in text


# Runs in a fresh interpreter that cannot import modeling_m2f_video: loads the exported folder through transformers
# alone, saves what it computes for the parent test to compare, and runs the card's remote-code snippets.
REMOTE_SCRIPT = r"""
import re, sys
from importlib.abc import MetaPathFinder

class BlockPackage(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "modeling_m2f_video":
            raise ImportError("modeling_m2f_video must not be imported here")

sys.meta_path.insert(0, BlockPackage())
import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoModelForInstanceSegmentation, AutoVideoProcessor, pipeline

folder, video_path, out_path = sys.argv[1:]
video = np.load(video_path)
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
processor = AutoVideoProcessor.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForInstanceSegmentation.from_pretrained(folder, trust_remote_code=True).eval()
base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
inputs = processor(video, return_tensors="pt")
with torch.no_grad():
    outputs = model(pixel_values_videos=inputs["pixel_values_videos"], pixel_mask=inputs["pixel_mask"])
    base_outputs = base(pixel_values_videos=inputs["pixel_values_videos"], pixel_mask=inputs["pixel_mask"])
instances = pipeline("video-instance-segmentation", model=folder, trust_remote_code=True)(video, top_k=4)

card = open(f"{folder}/README.md").read()
snippets = [code for code in re.findall(r"```python\n(.*?)```", card, flags=re.DOTALL) if "trust_remote_code" in code]
for code in snippets:
    exec(code.replace("ORG/NAME", folder), {})

torch.save(
    {
        "classes": [type(obj).__module__ for obj in (config, processor, model, base)],
        "class_queries_logits": outputs.class_queries_logits,
        "masks_queries_logits": outputs.masks_queries_logits,
        "decoder_last_hidden_state": base_outputs.transformer_decoder_last_hidden_state,
        "pipeline": [(item["label_id"], item["score"], torch.from_numpy(np.stack(item["masks"]))) for item in instances],
        "snippets_run": len(snippets),
    },
    out_path,
)
assert not [name for name in sys.modules if name.partition(".")[0] == "modeling_m2f_video"]
"""


@pytest.fixture(scope="module")
def remote_run(exported_dir: Path) -> dict:
    """What the exported folder computes in a fresh process without the package."""
    work = exported_dir.parent / "remote"
    work.mkdir()
    np.save(work / "video.npy", make_video())
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env.update(HF_HOME=str(work / "hf_home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    command = [sys.executable, "-c", REMOTE_SCRIPT, str(exported_dir), str(work / "video.npy"), str(work / "out.pt")]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(work / "out.pt", weights_only=True)


def test_exported_folder_loads_without_the_package(remote_run):
    assert all(module.startswith("transformers_modules.") for module in remote_run["classes"])
    assert remote_run["snippets_run"] == 2


def test_exported_folder_gives_the_package_outputs(remote_run, model_dir):
    processor = Mask2FormerVideoProcessor.from_pretrained(model_dir)
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(model_dir).eval()
    base = Mask2FormerVideoModel.from_pretrained(model_dir).eval()
    inputs = processor(make_video(), return_tensors="pt")
    with torch.no_grad():
        outputs = model(pixel_values_videos=inputs["pixel_values_videos"], pixel_mask=inputs["pixel_mask"])
        base_outputs = base(pixel_values_videos=inputs["pixel_values_videos"], pixel_mask=inputs["pixel_mask"])
    torch.testing.assert_close(remote_run["class_queries_logits"], outputs.class_queries_logits)
    torch.testing.assert_close(remote_run["masks_queries_logits"], outputs.masks_queries_logits)
    torch.testing.assert_close(
        remote_run["decoder_last_hidden_state"], base_outputs.transformer_decoder_last_hidden_state
    )

    expected = processor.post_process_video_instance_segmentation(
        outputs, target_sizes=inputs["original_sizes"], top_k=4, resized_sizes=inputs["resized_sizes"]
    )[0]
    labels, scores, masks = zip(*remote_run["pipeline"])
    assert list(labels) == expected["labels"].tolist()
    np.testing.assert_allclose(scores, expected["scores"].numpy(), rtol=1e-5)
    np.testing.assert_array_equal(np.stack(masks), expected["masks"].numpy())


# ----------------------------------------------------------------------------------------------------------------
# Command line: export-hub, push
# ----------------------------------------------------------------------------------------------------------------


def test_export_hub_command(model_dir, tmp_path, capsys):
    assert main(["export-hub", str(model_dir), "--output", str(tmp_path / "out"), "--repo-id", "org/tiny"]) == 0
    assert "modeling_mask2former_video.py" in capsys.readouterr().out
    assert '"org/tiny"' in (tmp_path / "out" / "README.md").read_text()
    assert main(["export-hub", str(model_dir), "--output", str(tmp_path / "out")]) == 2
    assert one_line_error(capsys) == f"{tmp_path / 'out'}: the folder is not empty (pass --overwrite to replace it)"


def test_export_hub_space_dry_run_lists_exactly_the_files_written_and_push_uploads_them(model_dir, tmp_path, capsys):
    output = tmp_path / "space"
    argv = ["export-hub", str(model_dir), "--output", str(output), "--space"]
    assert main([*argv, "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert {"app.py", "requirements.txt", "interface.py", "demo_video.mp4"} <= listed_files(listing)
    assert not output.exists()
    assert main(argv) == 0
    written = {f"  {path.name}  {_size_text(path.stat().st_size)}" for path in output.iterdir()}
    assert written == {line for line in listing.splitlines() if line.startswith("  ")}
    assert "\nsdk: gradio\n" in (output / "README.md").read_text()
    assert main(["push", str(output), "--repo-id", "org/tiny", "--space", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "to the Space org/tiny (private)" in out and listed_files(out) == {p.name for p in output.iterdir()}


def test_push_space_creates_a_gradio_space(model_dir, tmp_path, no_hub, capsys):
    output = tmp_path / "space"
    assert main(["export-hub", str(model_dir), "--output", str(output), "--space"]) == 0
    assert main(["push", str(output), "--repo-id", "org/tiny", "--space"]) == 0
    api = no_hub.return_value
    api.create_repo.assert_called_once_with(
        "org/tiny", repo_type="space", private=True, exist_ok=True, space_sdk="gradio"
    )
    assert api.create_commit.call_args.kwargs["repo_type"] == "space"


@pytest.fixture
def no_hub(monkeypatch):
    """Replaces `HfApi` in the upload module by a mock, so that nothing can reach the network."""
    api_class = mock.MagicMock(name="HfApi")
    api_class.return_value.create_commit.return_value = "https://huggingface.co/org/name/commit/abc"
    monkeypatch.setattr(upload, "HfApi", api_class)
    return api_class


def test_push_dry_run_lists_files_and_touches_nothing(exported_dir, no_hub, tmp_path, capsys):
    folder = Path(shutil.copytree(exported_dir, tmp_path / "folder"))
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "modeling_mask2former_video.cpython-311.pyc").write_bytes(b"0")
    (folder / ".DS_Store").write_bytes(b"0")
    assert main(["push", str(folder), "--repo-id", "org/name", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would upload") and "(private)" in out
    assert listed_files(out) == {path.name for path in exported_dir.iterdir()}
    assert f"  config.json  {_size_text((folder / 'config.json').stat().st_size)}" in out
    assert "not uploaded (not part of a model repository): .DS_Store, __pycache__/" in out
    no_hub.assert_not_called()


def test_push_dry_run_warns_about_a_folder_without_remote_code(model_dir, no_hub, capsys):
    assert main(["push", str(model_dir), "--repo-id", "org/name", "--dry-run", "--public"]) == 0
    captured = capsys.readouterr()
    assert "(public)" in captured.out and "no auto_map" in captured.err
    no_hub.assert_not_called()


def test_push_uploads_to_a_private_repository(exported_dir, no_hub, capsys):
    assert main(["push", str(exported_dir), "--repo-id", "org/name", "--token", "hf_test"]) == 0
    no_hub.assert_called_once_with(token="hf_test")
    api = no_hub.return_value
    api.create_repo.assert_called_once_with("org/name", repo_type="model", private=True, exist_ok=True)
    (repo_id, operations), options = api.create_commit.call_args
    assert repo_id == "org/name"
    assert options == {"commit_message": "Upload Mask2Former video model", "repo_type": "model"}
    assert {(op.path_in_repo, op.path_or_fileobj) for op in operations} == {
        (path.name, str(path)) for path in exported_dir.iterdir()
    }
    assert "uploaded: https://huggingface.co/org/name/commit/abc" in capsys.readouterr().out


def test_push_public(exported_dir, no_hub):
    assert main(["push", str(exported_dir), "--repo-id", "org/name", "--public"]) == 0
    assert no_hub.return_value.create_repo.call_args.kwargs["private"] is False


@pytest.mark.parametrize("repo_id", ["name", "org/name/extra", "org/bad name", "org/-name-", ""])
def test_push_rejects_bad_repository_ids(exported_dir, no_hub, repo_id, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["push", str(exported_dir), "--repo-id", repo_id, "--dry-run"])
    assert exit_info.value.code == 2 and "--repo-id" in capsys.readouterr().err
    no_hub.assert_not_called()


def test_push_needs_a_repository_id_and_a_folder(tmp_path, no_hub, capsys):
    with pytest.raises(SystemExit):
        main(["push", str(tmp_path)])
    capsys.readouterr()
    assert main(["push", str(tmp_path / "missing"), "--repo-id", "org/name"]) == 2
    assert one_line_error(capsys) == f"{tmp_path / 'missing'}: not a folder"
    (tmp_path / "log.jsonl").write_text("{}")
    assert main(["push", str(tmp_path), "--repo-id", "org/name"]) == 2  # no model file
    assert one_line_error(capsys).startswith(f"{tmp_path}: no model files to upload (expected config.json")
    no_hub.assert_not_called()


def test_push_reports_hub_refusals_in_one_line(exported_dir, no_hub, capsys):
    no_hub.return_value.create_repo.side_effect = HfHubHTTPError(
        "401 Client Error: Unauthorized\nInvalid credentials in Authorization header", response=mock.MagicMock()
    )
    assert main(["push", str(exported_dir), "--repo-id", "org/name"]) == 2
    assert one_line_error(capsys) == "org/name: the Hub refused the upload: 401 Client Error: Unauthorized"
    no_hub.return_value.create_repo.side_effect = LocalTokenNotFoundError("Token is required but none was found.")
    assert main(["push", str(exported_dir), "--repo-id", "org/name"]) == 2
    assert one_line_error(capsys) == "org/name: the Hub refused the upload: Token is required but none was found."


# ----------------------------------------------------------------------------------------------------------------
# What is published: the allow list, symbolic links, dry runs, replacing an export
# ----------------------------------------------------------------------------------------------------------------

# What a folder written by `m2f-video train` holds besides the model files.
TRAINING_ONLY = ["checkpoints/", "log.jsonl", "pytorch_model.bin", "training_config.json"]


@pytest.fixture
def training_dir(model_dir, tmp_path) -> Path:
    """A model folder as training leaves it: the model files, eval.json, and what must never be published."""
    folder = Path(shutil.copytree(model_dir, tmp_path / "run"))
    (folder / "eval.json").write_text(json.dumps({"AP": 0.5}))
    step = folder / "checkpoints" / "step-000010"
    step.mkdir(parents=True)
    (step / "optimizer.bin").write_bytes(b"pickled optimizer state")
    (step / "random_states_0.pkl").write_bytes(b"pickled random states")
    (folder / "training_config.json").write_text(json.dumps({"train_data": "/home/me/private/data"}))
    (folder / "log.jsonl").write_text('{"step": 1, "loss": 3.0}\n')
    (folder / "pytorch_model.bin").write_bytes(b"a pickle: never published")
    return folder


def test_export_and_push_publish_only_the_model_files_of_a_training_folder(training_dir, tmp_path, no_hub, capsys):
    exported = remote_code.export_hub_folder(training_dir, tmp_path / "exported")
    expected = {"README.md", "config.json", "eval.json", "model.safetensors", "video_preprocessor_config.json"}
    assert {path.name for path in exported.iterdir()} == expected | remote_code.remote_code_file_names()
    assert (exported / "eval.json").read_bytes() == (training_dir / "eval.json").read_bytes()

    assert main(["push", str(training_dir), "--repo-id", "org/name", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert listed_files(out) == expected
    assert f"not uploaded (not part of a model repository): {', '.join(TRAINING_ONLY)}" in out
    assert main(["push", str(training_dir), "--repo-id", "org/name"]) == 0
    (_, operations), _ = no_hub.return_value.create_commit.call_args
    assert {operation.path_in_repo for operation in operations} == expected


def test_sharded_weights_are_published(model_dir, tmp_path):
    folder = Path(shutil.copytree(model_dir, tmp_path / "sharded"))
    (folder / "model.safetensors").unlink()
    Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(model_dir).save_pretrained(
        folder, max_shard_size="200KB"
    )
    shards = {path.name for path in folder.glob("model-*-of-*.safetensors")}
    assert len(shards) > 1 and (folder / "model.safetensors.index.json").is_file()
    assert shards | {"model.safetensors.index.json"} <= set(upload.upload_plan(folder).names)
    exported = remote_code.export_hub_folder(folder, tmp_path / "exported")
    assert shards <= {path.name for path in exported.iterdir()}
    Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(exported)


@pytest.mark.parametrize("target", ["outside", "inside"])
def test_symbolic_links_among_the_model_files_are_refused(training_dir, tmp_path, no_hub, capsys, target):
    """A link is refused whatever it points to: its target would be copied out of wherever it lies."""
    secret = tmp_path / "secret.txt" if target == "outside" else training_dir / "checkpoints" / "notes.txt"
    secret.write_text("never to be published")
    (training_dir / "eval.json").unlink()
    (training_dir / "eval.json").symlink_to(secret)
    with pytest.raises(remote_code.HubError, match=f"eval.json: is a symbolic link \\(to {secret}\\); refused"):
        remote_code.export_hub_folder(training_dir, tmp_path / "exported")
    assert not (tmp_path / "exported").exists()
    assert main(["push", str(training_dir), "--repo-id", "org/name", "--dry-run"]) == 2
    assert "eval.json: is a symbolic link" in one_line_error(capsys)
    no_hub.assert_not_called()


def test_links_outside_the_allow_list_are_left_out_unread(training_dir, tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "private.key").write_text("secret")
    (training_dir / "checkpoints" / "latest").symlink_to(training_dir / "checkpoints" / "step-000010")
    (training_dir / "data").symlink_to(outside)
    plan = upload.upload_plan(training_dir)
    assert "data" in plan.left_out and "private.key" not in str(plan)
    exported = remote_code.export_hub_folder(training_dir, tmp_path / "exported")
    assert not (exported / "data").exists() and not any(path.is_symlink() for path in exported.iterdir())


def test_export_dry_run_lists_exactly_what_is_written_and_writes_nothing(training_dir, tmp_path, capsys):
    output = tmp_path / "exported"
    assert main(["export-hub", str(training_dir), "--output", str(output), "--dry-run", "--repo-id", "org/a"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"would write {len(listed_files(out))} files") and not output.exists()
    assert f"not exported (not part of a model repository): {', '.join(TRAINING_ONLY)}" in out
    assert main(["export-hub", str(training_dir), "--output", str(output), "--repo-id", "org/a"]) == 0
    written = {f"  {path.name}  {_size_text(path.stat().st_size)}" for path in output.iterdir()}
    assert written == {line for line in out.splitlines() if line.startswith("  ")}


def test_export_overwrite_replaces_the_exported_folder(model_dir, tmp_path, capsys):
    output = remote_code.export_hub_folder(model_dir, tmp_path / "exported")
    (output / "model-00001-of-00002.safetensors").write_bytes(b"stale shard of an earlier export")
    assert main(["export-hub", str(model_dir), "--output", str(output), "--overwrite"]) == 0
    assert not (output / "model-00001-of-00002.safetensors").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []
    assert main(["export-hub", str(model_dir), "--output", str(model_dir.parent), "--overwrite"]) == 2
    assert "replaces only a model folder" in one_line_error(capsys)


def test_push_warns_about_remote_code_it_does_not_upload(exported_dir, tmp_path, no_hub, capsys):
    folder = Path(shutil.copytree(exported_dir, tmp_path / "old_export"))
    (folder / "presets.py").unlink()
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"]["AutoConfig"] = "configuration_of_an_old_release.Mask2FormerVideoConfig"
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["push", str(folder), "--repo-id", "org/name", "--dry-run"]) == 0
    assert "names remote code that is not uploaded (configuration_of_an_old_release.py)" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# An exported folder through transformers' pipeline, with the package installed (as `predict` loads it)
# ----------------------------------------------------------------------------------------------------------------

# Runs in a fresh interpreter (its own transformers module cache) where modeling_m2f_video is importable and its
# pipeline task registered: `pipeline(..., trust_remote_code=True)` must run the folder's own code.
PIPELINE_SCRIPT = r"""
import sys
import numpy as np
import torch
import modeling_m2f_video  # registers the package's task and Auto classes, as `m2f-video predict` does
from transformers import AutoModel, AutoModelForInstanceSegmentation, pipeline

folder, video_path, out_path = sys.argv[1:]
segmenter = pipeline("video-instance-segmentation", model=folder, trust_remote_code=True)
instances = segmenter(np.load(video_path), top_k=4)
AutoModel.from_pretrained(folder, trust_remote_code=True)
AutoModelForInstanceSegmentation.from_pretrained(folder, trust_remote_code=True)
torch.save(
    {
        "classes": [type(segmenter).__module__, type(segmenter.model).__module__],
        "pipeline": [(item["label_id"], item["score"], torch.from_numpy(np.stack(item["masks"]))) for item in instances],
    },
    out_path,
)
"""


def test_pipeline_runs_an_exported_training_folder_with_trust_remote_code(training_dir, tmp_path):
    exported = remote_code.export_hub_folder(training_dir, tmp_path / "exported")
    np.save(tmp_path / "video.npy", make_video())
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    command = [sys.executable, "-c", PIPELINE_SCRIPT, str(exported), str(tmp_path / "video.npy"), str(tmp_path / "o")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    remote = torch.load(tmp_path / "o", weights_only=True)
    assert all(module.startswith("transformers_modules.") for module in remote["classes"])

    expected = transformers.pipeline(cards.PIPELINE_TASK, model=str(training_dir))(make_video(), top_k=4)
    assert [label for label, _, _ in remote["pipeline"]] == [item["label_id"] for item in expected]
    np.testing.assert_allclose([score for _, score, _ in remote["pipeline"]], [i["score"] for i in expected], 1e-5)
    for (_, _, masks), item in zip(remote["pipeline"], expected):
        np.testing.assert_array_equal(masks.numpy(), np.stack(item["masks"]))
