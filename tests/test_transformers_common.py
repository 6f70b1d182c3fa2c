"""transformers' own common model tests (`ModelTesterMixin`, `ConfigTester`) run against both video classes.

The tests come from the test sources of the installed transformers version, which its source distribution ships
(`.ci/run` fetches it with pip). They are looked for in `$TRANSFORMERS_TESTS_DIR` (a transformers `tests/` folder,
of an sdist or a git checkout), else in `.ci/transformers-src/transformers-<installed version>/tests`; without them,
or when they belong to another version, the module is skipped and says why (an error instead with
`TRANSFORMERS_TESTS_REQUIRED=1`, as in CI). To run them locally as CI does:

    pip install parameterized
    version=$(python -c 'import transformers; print(transformers.__version__)')
    pip download --no-deps --no-binary :all: "transformers==$version" -d .ci/transformers-src
    tar -xzf ".ci/transformers-src/transformers-$version.tar.gz" -C .ci/transformers-src
    pytest tests/test_transformers_common.py

The tester mirrors the image model's (`tests/models/mask2former/test_modeling_mask2former.py` in transformers'
repository), once per backbone (ResNet and Swin): the same tester methods and the same overrides of common tests
that assume a text-model output layout (hidden states, attentions, training); a test is skipped only where the image
model's test skips it, with its reason.
"""

import functools
import importlib
import importlib.util
import os
import re
import sys
import types
import unittest
import warnings
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
import torch
import transformers
from torch import Tensor
from transformers.models.auto import modeling_auto

from modeling_m2f_video import (
    Mask2FormerVideoConfig,
    Mask2FormerVideoForVideoInstanceSegmentation,
    Mask2FormerVideoModel,
)

REPOSITORY = Path(__file__).resolve().parents[1]
TESTS_DIR_VARIABLE = "TRANSFORMERS_TESTS_DIR"
# Set to 1 (CI does) to make missing test sources an error instead of a skip.
REQUIRED_VARIABLE = "TRANSFORMERS_TESTS_REQUIRED"
# Where `.ci/run` unpacks the source distribution (ignored by git).
DEFAULT_SOURCES = REPOSITORY / ".ci" / "transformers-src"
# The name the transformers test package is imported under (not `tests`, which is this repository's folder).
PACKAGE = "transformers_tests"


def find_transformers_tests() -> tuple[Path | None, str]:
    """The transformers `tests/` folder for the installed version, or None and the reason it cannot be used."""
    installed = transformers.__version__
    if os.environ.get(TESTS_DIR_VARIABLE):
        tests_dir = Path(os.environ[TESTS_DIR_VARIABLE]).expanduser().resolve()
        origin = f"${TESTS_DIR_VARIABLE}={tests_dir}"
    else:
        tests_dir = DEFAULT_SOURCES / f"transformers-{installed}" / "tests"
        origin = str(tests_dir)
    if not (tests_dir / "test_modeling_common.py").is_file():
        return None, (
            f"transformers' test sources for the installed version {installed} are not at {origin}; "
            f"run .ci/run or set {TESTS_DIR_VARIABLE} to the tests/ folder of the transformers=={installed} sdist"
        )
    version_file = tests_dir.parent / "src" / "transformers" / "__init__.py"
    found = re.search(r'^__version__ = "([^"]+)"', version_file.read_text(), re.M) if version_file.is_file() else None
    if found is None:
        return None, f"cannot tell which transformers version the tests at {origin} belong to (no {version_file})"
    if found.group(1) != installed:
        return None, f"the tests at {origin} are transformers {found.group(1)}'s, the installed version is {installed}"
    return tests_dir, ""


# The modules `test_modeling_common` and `test_configuration_common` import that the source distribution leaves out,
# with what stands in for each. None of them holds a test that applies to these models:
STAND_INS = {
    # The torch.export tests, a base of `ModelTesterMixin`: without the file, none of them runs.
    "exporters.test_export": {"ExportTesterMixin": type("ExportTesterMixin", (), {})},
    # Only looked up to check that models which cannot generate do not inherit it.
    "generation.test_utils": {"GenerationTesterMixin": type("GenerationTesterMixin", (), {})},
    # Only read by `ConfigTester.check_config_arguments_init`, which returns first for configs with sub-configs
    # (the backbone config here).
    "utils.test_configuration_utils": {"config_common_kwargs": {}},
}


def load_transformers_tests(tests_dir: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """Imports `test_modeling_common` and `test_configuration_common` from `tests_dir` as the package `PACKAGE`.

    The two use relative imports (`from .exporters.test_export import ...`), so they are imported as modules of a
    package whose path is `tests_dir`. Modules of `STAND_INS` that the folder lacks are provided, and so is the
    package's `__init__.py`, which `test_configuration_common` executes at import (transformers'
    `direct_transformers_import`) only to return the `transformers` module already imported.
    """
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(tests_dir)]
    sys.modules[PACKAGE] = package
    for name, attributes in STAND_INS.items():
        if (tests_dir / f"{name.replace('.', '/')}.py").is_file():
            continue
        parent = name.split(".")[0]
        if f"{PACKAGE}.{parent}" not in sys.modules and not (tests_dir / parent).is_dir():
            subpackage = types.ModuleType(f"{PACKAGE}.{parent}")
            subpackage.__path__ = []
            sys.modules[subpackage.__name__] = subpackage
        module = types.ModuleType(f"{PACKAGE}.{name}")
        module.__dict__.update(attributes)
        sys.modules[module.__name__] = module
    # transformers registers its custom pytest marks (`flash_attn_test`, ...) in a conftest.py the sdist leaves out
    with _package_init_or_installed_transformers(tests_dir), warnings.catch_warnings():
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        modeling = importlib.import_module(f"{PACKAGE}.test_modeling_common")
        configuration = importlib.import_module(f"{PACKAGE}.test_configuration_common")
    return modeling, configuration


@contextmanager
def _package_init_or_installed_transformers(tests_dir: Path):
    """While importing: `direct_transformers_import` returns the installed transformers if `tests_dir` has no
    `__init__.py` to execute (the source distribution has none)."""
    if (tests_dir / "__init__.py").is_file():
        yield
        return
    utils = transformers.utils
    original = utils.direct_transformers_import
    utils.direct_transformers_import = lambda path, file="__init__.py": transformers
    try:
        yield
    finally:
        utils.direct_transformers_import = original


TESTS_DIR, SKIP_REASON = find_transformers_tests()
if TESTS_DIR is not None and importlib.util.find_spec("parameterized") is None:
    TESTS_DIR, SKIP_REASON = None, "transformers' common tests import `parameterized`: pip install parameterized"
if TESTS_DIR is None and os.environ.get(REQUIRED_VARIABLE) == "1":
    raise RuntimeError(f"{SKIP_REASON} (${REQUIRED_VARIABLE}=1 asks for them)")
if TESTS_DIR is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)
common, configuration_common = load_transformers_tests(TESTS_DIR)
from parameterized import parameterized  # noqa: E402 (needs the skips above)
from transformers.testing_utils import require_torch_multi_gpu, torch_device  # noqa: E402

floats_tensor = common.floats_tensor


class Mask2FormerVideoModelTester:
    """The image model's `Mask2FormerModelTester` for videos: `(batch, frames, 3, height, width)` inputs and
    `(tracks, frames, height, width)` masks per video, on the package's tiny configuration of one backbone."""

    def __init__(
        self,
        parent: unittest.TestCase,
        backbone: str,
        batch_size: int = 2,
        is_training: bool = True,
        use_auxiliary_loss: bool = False,
        num_queries: int = 10,
        num_channels: int = 3,
        num_frames: int = 2,
        min_size: int = 64,
        max_size: int = 64,
        num_labels: int = 4,
        hidden_dim: int = 32,
        num_attention_heads: int = 2,
        num_hidden_layers: int = 2,
    ):
        self.parent = parent
        self.backbone = backbone
        self.batch_size = batch_size
        self.is_training = is_training
        self.use_auxiliary_loss = use_auxiliary_loss
        self.num_queries = num_queries
        self.num_channels = num_channels
        self.num_frames = num_frames
        self.min_size = min_size
        self.max_size = max_size
        self.num_labels = num_labels
        self.hidden_dim = hidden_dim
        self.mask_feature_size = hidden_dim
        self.num_attention_heads = num_attention_heads
        self.num_hidden_layers = num_hidden_layers

    def prepare_config_and_inputs(self):
        video_shape = [self.batch_size, self.num_frames, self.num_channels, self.min_size, self.max_size]
        pixel_values_videos = floats_tensor(video_shape).to(torch_device)
        pixel_mask = torch.ones([self.batch_size, self.min_size, self.max_size], device=torch_device)
        mask_labels, class_labels = self.prepare_labels(self.batch_size)
        return self.get_config(), pixel_values_videos, pixel_mask, mask_labels, class_labels

    def prepare_labels(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """`num_labels` random tracks per video: masks `(batch, tracks, frames, height, width)` and classes."""
        mask_shape = [batch_size, self.num_labels, self.num_frames, self.min_size, self.max_size]
        mask_labels = (torch.rand(mask_shape, generator=generator) > 0.5).float().to(torch_device)
        class_labels = (torch.rand((batch_size, self.num_labels), generator=generator) > 0.5).long().to(torch_device)
        return mask_labels, class_labels

    def get_config(self) -> Mask2FormerVideoConfig:
        return Mask2FormerVideoConfig.tiny(
            self.backbone,
            num_labels=self.num_labels,
            num_queries=self.num_queries,
            hidden_dim=self.hidden_dim,
            mask_feature_size=self.hidden_dim,
            feature_size=self.hidden_dim,
            num_attention_heads=self.num_attention_heads,
            decoder_layers=self.num_hidden_layers,
            use_auxiliary_loss=self.use_auxiliary_loss,
            num_frames=self.num_frames,
        )

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values_videos, pixel_mask, _, _ = self.prepare_config_and_inputs()
        return config, {"pixel_values_videos": pixel_values_videos, "pixel_mask": pixel_mask}

    def check_output_hidden_state(self, output, config):
        frames = self.batch_size * self.num_frames
        self.parent.assertEqual(len(output.encoder_hidden_states), len(config.backbone_config.out_features))
        self.parent.assertEqual(len(output.pixel_decoder_hidden_states), 3)
        self.parent.assertEqual(len(output.transformer_decoder_hidden_states), config.decoder_layers)
        self.parent.assertEqual(output.pixel_decoder_hidden_states[0].shape[0], frames)
        self.parent.assertEqual(
            output.transformer_decoder_hidden_states[-1].shape, (self.num_queries, self.batch_size, self.hidden_dim)
        )

    def create_and_check_mask2former_video_model(
        self, config, pixel_values_videos, pixel_mask, output_hidden_states=False
    ):
        with torch.no_grad():
            model = Mask2FormerVideoModel(config=config).to(torch_device).eval()
            output = model(pixel_values_videos=pixel_values_videos, pixel_mask=pixel_mask)
            output = model(pixel_values_videos, output_hidden_states=True)

        self.parent.assertEqual(
            output.transformer_decoder_last_hidden_state.shape, (self.batch_size, self.num_queries, self.hidden_dim)
        )
        # the per-frame outputs of the backbone and pixel decoder exist too
        self.parent.assertTrue(output.pixel_decoder_last_hidden_state is not None)
        self.parent.assertTrue(output.encoder_last_hidden_state is not None)
        if output_hidden_states:
            self.check_output_hidden_state(output, config)

    def create_and_check_mask2former_video_instance_segmentation_head_model(
        self, config, pixel_values_videos, pixel_mask, mask_labels, class_labels
    ):
        model = Mask2FormerVideoForVideoInstanceSegmentation(config=config).to(torch_device).eval()

        def comm_check_on_output(result):
            self.parent.assertTrue(result.transformer_decoder_last_hidden_state is not None)
            self.parent.assertTrue(result.pixel_decoder_last_hidden_state is not None)
            self.parent.assertTrue(result.encoder_last_hidden_state is not None)
            # one mask volume per query, at a quarter of the input resolution
            self.parent.assertEqual(
                result.masks_queries_logits.shape,
                (self.batch_size, self.num_queries, self.num_frames, self.min_size // 4, self.max_size // 4),
            )
            # + 1 for the "no object" class
            self.parent.assertEqual(
                result.class_queries_logits.shape, (self.batch_size, self.num_queries, self.num_labels + 1)
            )

        with torch.no_grad():
            result = model(pixel_values_videos=pixel_values_videos, pixel_mask=pixel_mask)
            result = model(pixel_values_videos)
            comm_check_on_output(result)
            result = model(
                pixel_values_videos=pixel_values_videos,
                pixel_mask=pixel_mask,
                mask_labels=mask_labels,
                class_labels=class_labels,
            )
        comm_check_on_output(result)
        self.parent.assertTrue(result.loss is not None)
        self.parent.assertEqual(result.loss.shape, torch.Size([]))


@contextmanager
def seeded_forwards(model_classes: tuple[type, ...], seed: int = 0):
    """Every forward call of a model of `model_classes` starts from the same torch seed.

    The loss samples random points (the matcher's and the importance sampling's, as in the official model and in
    transformers' image Mask2Former), so two calls on the same labels give different losses unless both start from
    the same random state."""
    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: torch.manual_seed(seed) and None if isinstance(module, model_classes) else None
    )
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def decoder_hidden_states_as_hidden_states(model_classes: tuple[type, ...]):
    """The models' outputs carry the transformer decoder's hidden states as `hidden_states` too, batch first.

    transformers' eager-vs-SDPA comparison reads `outputs.hidden_states`, a field no Mask2Former output has: the
    decoder's hidden states are what the attention implementation changes (the backbone and pixel decoder do not
    depend on it), so they are what is compared."""
    originals = {model_class: model_class.forward for model_class in model_classes}

    def with_hidden_states(forward):
        @functools.wraps(forward)
        def wrapped(self, *args, **kwargs):
            outputs = forward(self, *args, **kwargs)
            if outputs.transformer_decoder_hidden_states is not None:
                outputs["hidden_states"] = tuple(
                    states.transpose(0, 1) for states in outputs.transformer_decoder_hidden_states
                )
            return outputs

        return wrapped

    try:
        for model_class, forward in originals.items():
            model_class.forward = with_hidden_states(forward)
        yield
    finally:
        for model_class, forward in originals.items():
            model_class.forward = forward


class Mask2FormerVideoModelTestMixin(common.ModelTesterMixin):
    """The image model's `Mask2FormerModelTest` for the video classes; subclasses choose the backbone."""

    backbone: str
    all_model_classes = (Mask2FormerVideoModel, Mask2FormerVideoForVideoInstanceSegmentation)
    is_encoder_decoder = False
    test_missing_keys = False

    def setUp(self):
        self.model_tester = Mask2FormerVideoModelTester(self, self.backbone)
        self.config_tester = configuration_common.ConfigTester(
            self, config_class=Mask2FormerVideoConfig, has_text_modality=False
        )
        # The common tests tell a base model (no head, no loss) by its name in transformers' table of AutoModel
        # classes, which lists the library's own models only; `AutoModel.register` does not add to it.
        base_model_names = mock.patch.dict(
            modeling_auto.MODEL_MAPPING_NAMES, {Mask2FormerVideoConfig.model_type: Mask2FormerVideoModel.__name__}
        )
        base_model_names.start()
        self.addCleanup(base_model_names.stop)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        """transformers' preparation, plus the labels of the segmentation head when the test asks for labels (the
        common preparation only knows the label formats of the text, image-classification and other heads). The
        labels depend only on the batch size, so that repeated preparations give the same ones."""
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and model_class is Mask2FormerVideoForVideoInstanceSegmentation:
            batch_size = inputs_dict["pixel_values_videos"].shape[0]
            labels = self.model_tester.prepare_labels(batch_size, generator=torch.Generator().manual_seed(0))
            inputs_dict["mask_labels"], inputs_dict["class_labels"] = labels
        return inputs_dict

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_mask2former_video_model(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        self.model_tester.create_and_check_mask2former_video_model(config, **inputs, output_hidden_states=False)

    def test_mask2former_video_instance_segmentation_head_model(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_mask2former_video_instance_segmentation_head_model(*config_and_inputs)

    @unittest.skip(reason="Mask2Former does not use inputs_embeds")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="Mask2Former does not have a get_input_embeddings method")
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip(reason="Mask2Former does not use token embeddings")
    def test_resize_tokens_embeddings(self):
        pass

    @require_torch_multi_gpu
    @unittest.skip(
        reason="Mask2Former has some layers using `add_module` which doesn't work well with `nn.DataParallel`"
    )
    def test_multi_gpu_data_parallel_forward(self):
        pass

    def test_model_with_labels(self):
        tester = self.model_tester
        size = (tester.min_size, tester.max_size)
        inputs = {
            "pixel_values_videos": torch.randn((2, tester.num_frames, 3, *size), device=torch_device),
            "mask_labels": torch.randn((2, 10, tester.num_frames, *size), device=torch_device),
            "class_labels": torch.zeros(2, 10, device=torch_device).long(),
        }
        model = Mask2FormerVideoForVideoInstanceSegmentation(tester.get_config()).to(torch_device)
        outputs = model(**inputs)
        self.assertTrue(outputs.loss is not None)

    def test_hidden_states_output(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        self.model_tester.create_and_check_mask2former_video_model(config, **inputs, output_hidden_states=True)

    def test_attention_outputs(self):
        """One self-attention tensor `(batch, heads, queries, queries)` per decoder layer, as the image model gives,
        and the masked cross-attention weights `(batch, heads, queries, frames·h·w)` in `cross_attentions`."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        tester = self.model_tester
        for model_class in self.all_model_classes:
            model = model_class(config).to(torch_device)
            outputs = model(**inputs, output_attentions=True)
            self.assertTrue(outputs.attentions is not None)
            self.assertEqual(len(outputs.attentions), config.decoder_layers - 1)
            self.assertEqual(len(outputs.cross_attentions), config.decoder_layers - 1)
            for self_attention, cross_attention in zip(outputs.attentions, outputs.cross_attentions):
                heads_and_queries = (tester.batch_size, tester.num_attention_heads, tester.num_queries)
                self.assertEqual(self_attention.shape, (*heads_and_queries, tester.num_queries))
                self.assertEqual(cross_attention.shape[:3], heads_and_queries)

    def test_training(self):
        if not self.model_tester.is_training:
            self.skipTest(reason="model_tester.is_training is set to False")
        model_class = self.all_model_classes[1]
        config, pixel_values_videos, _, mask_labels, class_labels = self.model_tester.prepare_config_and_inputs()
        model = model_class(config).to(torch_device).train()
        loss = model(pixel_values_videos, mask_labels=mask_labels, class_labels=class_labels).loss
        loss.backward()

    def test_retain_grad_hidden_states_attentions(self):
        model_class = self.all_model_classes[1]
        config, pixel_values_videos, _, mask_labels, class_labels = self.model_tester.prepare_config_and_inputs()
        config.output_hidden_states = True
        config.output_attentions = True
        model = model_class(config).to(torch_device).train()
        outputs = model(pixel_values_videos, mask_labels=mask_labels, class_labels=class_labels)

        encoder_hidden_states = outputs.encoder_hidden_states[0]
        encoder_hidden_states.retain_grad()
        pixel_decoder_hidden_states = outputs.pixel_decoder_hidden_states[0]
        pixel_decoder_hidden_states.retain_grad()
        transformer_decoder_hidden_states = outputs.transformer_decoder_hidden_states[0]
        transformer_decoder_hidden_states.retain_grad()
        attentions = outputs.attentions[0]
        attentions.retain_grad()

        outputs.loss.backward(retain_graph=True)

        self.assertIsNotNone(encoder_hidden_states.grad)
        self.assertIsNotNone(pixel_decoder_hidden_states.grad)
        self.assertIsNotNone(transformer_decoder_hidden_states.grad)
        self.assertIsNotNone(attentions.grad)

    def test_model_outputs_equivalence(self):
        """transformers' test, with each forward starting from the same seed (see `seeded_forwards`): it compares
        the loss of two calls, which the image model's tester never computes (it gives no labels)."""
        with seeded_forwards(self.all_model_classes):
            super().test_model_outputs_equivalence()

    @parameterized.expand(common.TEST_EAGER_MATCHES_SDPA_INFERENCE_PARAMETERIZATION)
    def test_eager_matches_sdpa_inference(
        self, name, dtype, padding_side, use_attention_mask, output_attentions, enable_kernels
    ):
        """transformers' comparison, on the decoder hidden states (see `decoder_hidden_states_as_hidden_states`)."""
        with decoder_hidden_states_as_hidden_states(self.all_model_classes):
            common._test_eager_matches_sdpa_inference(
                self, name, dtype, padding_side, use_attention_mask, output_attentions, enable_kernels
            )


class Mask2FormerVideoResNetModelTest(Mask2FormerVideoModelTestMixin, unittest.TestCase):
    backbone = "resnet"


class Mask2FormerVideoSwinModelTest(Mask2FormerVideoModelTestMixin, unittest.TestCase):
    backbone = "swin"
