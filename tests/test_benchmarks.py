"""The benchmark suite's code paths in --quick mode (tiny configs): records have the expected fields and sane
values. Nothing here asserts a timing.

Also: the official-style post-processing the memory baseline uses gives exactly the processor's top-k results, so
the memory comparison is between two ways of computing the same answer.
"""

import json
import math
import os

import pytest
import torch
from conftest import load_benchmark_script

from modeling_m2f_video import (
    Mask2FormerVideoConfig,
    Mask2FormerVideoForVideoInstanceSegmentation,
    Mask2FormerVideoProcessor,
)

inference = load_benchmark_script("bench_inference")
training = load_benchmark_script("bench_training")
runner = load_benchmark_script("run_benchmarks")
PartTimer = inference.PartTimer
from benchmark_utils import measure_peak_memory, peak_rss_bytes, time_runs  # noqa: E402  (after the path is set)

TIMED_PARTS = {"backbone", "pixel_decoder", "transformer_decoder", "post_processing", "other"}


def quick_args(script, *options: str):
    return script.parse_args(["--quick", *options])


def assert_positive_seconds(value: float) -> None:
    assert isinstance(value, float) and math.isfinite(value) and value >= 0


def test_inference_records_have_parts_ratios_and_memory(tmp_path):
    output = tmp_path / "inference.json"
    args = quick_args(
        inference, "--presets", "tiny-r50", "--image-baseline", "--official-style", "--output", str(output)
    )
    records = inference.run(args)

    assert [record["num_frames"] for record in records] == [1, 3]
    for record in records:
        assert record["padded_size"] == [64, 96]
        assert set(record["parts_s"]) == TIMED_PARTS
        for value in [record["total_s"], record["per_frame_s"], *record["parts_s"].values()]:
            assert_positive_seconds(value)
        assert sum(record["parts_s"].values()) == pytest.approx(record["total_s"], rel=1e-6)
        assert record["parts_s"]["backbone"] > 0 and record["parts_s"]["transformer_decoder"] > 0
        image = record["image_per_frame"]
        assert set(image["parts_s"]) == TIMED_PARTS and image["total_s"] > 0
        assert record["ratio_to_image"] == pytest.approx(record["total_s"] / image["total_s"])
        assert record["paired_ratio_to_image"] == pytest.approx(record["runs_s"][0] / image["runs_s"][0])
        for memory in (record["memory"], record["official_style"]):
            assert memory["peak_bytes"] >= memory["baseline_bytes"] > 0
        assert record["memory_ratio_to_official_style"] > 0
    written = json.loads(output.read_text())
    assert written["benchmark"] == "inference" and len(written["records"]) == 2
    assert {"cpu", "nproc", "ram_gb", "torch", "date"} <= set(written["machine"])


def test_official_style_post_processing_matches_the_processor():
    model = inference.build_video_model("tiny-r50", chunk_size=None, device="cpu")
    model.config.test_top_k = 5
    inputs = inference.make_inputs(num_frames=3, height=50, width=70, device="cpu")  # padded to 64x96
    inputs["original_sizes"] = torch.tensor([[100, 140]])  # as if the frames had been resized down
    outputs, ours = inference.run_video(model, inputs, inference.OURS)
    _, baseline = inference.run_video(model, inputs, inference.OFFICIAL_STYLE)
    ((ours,), (baseline,)) = (ours, baseline)
    expected = Mask2FormerVideoProcessor().post_process_video_instance_segmentation(
        outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"], top_k=5
    )[0]
    assert ours["masks"].shape == (5, 3, 100, 140)
    for key in ("scores", "labels", "query_indices", "masks"):
        torch.testing.assert_close(baseline[key], ours[key], rtol=0, atol=0)
        torch.testing.assert_close(expected[key], ours[key], rtol=0, atol=0)


def test_official_style_keeps_every_prediction_and_ours_only_the_last():
    model = inference.build_video_model("tiny-r50", chunk_size=2, device="cpu")
    inputs = inference.make_inputs(num_frames=3, height=64, width=64, device="cpu")
    ours, _ = inference.run_video(model, inputs, inference.OURS)
    official, _ = inference.run_video(model, inputs, inference.OFFICIAL_STYLE)
    assert ours.auxiliary_logits is None
    assert len(official.auxiliary_logits) == model.config.decoder_layers - 1
    torch.testing.assert_close(ours.masks_queries_logits, official.masks_queries_logits, rtol=0, atol=1e-5)


def test_bf16_autocast_stays_close_to_fp32():
    """bf16 autocast on the CPU: loose agreement of the top-k with fp32 (random tiny weights, close scores)."""
    records = inference.run(quick_args(inference, "--presets", "tiny-r50", "--precisions", "bf16", "--frames", "3"))
    (parity,) = [record["parity"] for record in records]
    assert parity["class_logits_max_abs_diff"] < 0.1
    assert parity["topk_agreement"] >= 0.5
    assert parity["score_max_diff"] < 0.05
    assert 0 <= parity["mask_iou_min"] <= 1


@pytest.mark.skipif(
    not os.environ.get("M2F_TEST_COMPILE"),
    reason="torch.compile on the CPU takes minutes (C++ build); set M2F_TEST_COMPILE=1 to run it",
)
def test_compiled_bf16_stays_close_to_fp32():
    records = inference.run(
        quick_args(inference, "--presets", "tiny-r50", "--precisions", "bf16-compile", "--frames", "3")
    )
    (parity,) = [record["parity"] for record in records]
    assert parity["class_logits_max_abs_diff"] < 0.1
    assert parity["topk_agreement"] >= 0.5


def test_topk_parity_of_identical_runs_is_perfect():
    model = inference.build_video_model("tiny-swin", chunk_size=None, device="cpu")
    inputs = inference.make_inputs(num_frames=2, height=64, width=64, device="cpu")
    run = inference.run_video(model, inputs)
    parity = inference.topk_parity(run, run)
    assert parity == {
        "class_logits_max_abs_diff": 0.0,
        "topk_agreement": 1.0,
        "score_max_diff": 0.0,
        "mask_iou_min": 1.0,
    }


def test_memory_worker_runs_in_a_fresh_process():
    case = {"preset": "tiny-r50", "size": [64, 64], "num_frames": 2, "precision": "fp32", "device": "cpu"}
    memory = inference.measure_memory({**case, "chunk_size": 1}, inference.OURS, "subprocess")
    assert memory["memory_kind"] in ("peak_rss", "peak_rss_since_start")
    assert memory["peak_bytes"] >= memory["baseline_bytes"] > 0
    assert_positive_seconds(memory["run_s"])


def test_training_records(tmp_path):
    output = tmp_path / "training.json"
    (record,) = training.run(quick_args(training, "--output", str(output)))
    assert (record["batch_size"], record["num_frames"]) == (2, 2)
    assert set(record["parts_s"]) == set(training.STEP_PARTS)
    for value in [record["step_s"], *record["parts_s"].values()]:
        assert_positive_seconds(value)
    assert all(math.isfinite(loss) and loss > 0 for loss in record["losses"])
    assert record["memory"]["peak_bytes"] >= record["memory"]["baseline_bytes"] > 0
    assert json.loads(output.read_text())["records"][0]["step_s"] == record["step_s"]


def test_random_labels_fit_the_clip():
    labels = training.random_labels(batch_size=2, num_frames=2, height=32, width=48, num_labels=3, device="cpu")
    for masks, classes in zip(labels["mask_labels"], labels["class_labels"]):
        assert masks.shape[1:] == (2, 32, 48) and masks.shape[0] == classes.shape[0] >= 1
        assert masks.flatten(1).sum(1).min() > 0 and classes.max() < 3


def test_part_timer_and_time_runs():
    layer = torch.nn.Linear(4, 4)
    with PartTimer({"layer": layer}) as timer:
        timing = time_runs(lambda: [layer(torch.ones(1, 4)) for _ in range(3)], repeats=3, warmup=1, timer=timer)
    assert len(timing["runs_s"]) == 3 and set(timing["parts_s"]) == {"layer"}
    assert 0 <= timing["parts_s"]["layer"] <= timing["total_s"] * 1.5
    assert not layer._forward_hooks and not layer._forward_pre_hooks  # hooks removed on exit


def test_peak_memory_sees_a_large_allocation():
    memory = {}
    with measure_peak_memory("cpu", memory):
        block = torch.ones(64 * 2**20, dtype=torch.uint8)  # 64 MiB, touched
        del block
    assert memory["peak_bytes"] - memory["baseline_bytes"] >= 60 * 2**20
    assert peak_rss_bytes() > 0


def test_benchmark_runner_runs_the_metric_script(capsys):
    assert runner.main(["metric", "--quick"]) == 0
    assert "realistic_medium" in capsys.readouterr().out


def test_benchmark_runner_refuses_options_for_all():
    with pytest.raises(SystemExit):
        runner.main(["all", "--quick", "--repeats", "2"])


def test_train_synthetic_fits_the_time_budget_reports_and_installs_the_demo(tmp_path, monkeypatch):
    """`--minutes` turns a probed speed into steps; the report has the numbers; the run becomes a demo folder."""
    script = load_benchmark_script("train_synthetic")
    monkeypatch.setattr(script, "PROBE_STEPS", 2)
    monkeypatch.setattr(script, "DEMO_DIR", tmp_path / "demo")
    work = tmp_path / "run"
    options = ["--work", str(work), "--videos", "4", "--frames", "3", "--height", "32", "--width", "48"]
    options += ["--size", "32", "--batch-size", "2", "--num-workers", "0", "--minutes", "0.02", "--install-demo"]
    assert script.main(options) == 0

    report = json.loads((work / "benchmark.json").read_text())
    assert report["probe_seconds_per_step"] > 0
    assert report["steps"] == max(1, int(0.02 * 60 / report["probe_seconds_per_step"]))
    assert json.loads((work / "model" / "log.jsonl").read_text().splitlines()[-1])["step"] == report["steps"]
    assert not (work / "probe").exists()
    assert set(report["metrics"]) >= {"AP", "AP50", "AP75", "AR10"}
    assert report["command"].endswith(" ".join(options))

    demo = tmp_path / "demo"
    config = Mask2FormerVideoConfig.from_pretrained(demo)
    assert config.num_labels == 3 and config.hidden_dim == 64
    card = (demo / "README.md").read_text()
    assert report["command"] in card and f"{report['metrics']['AP']:.3f}" in card
    assert f"`--steps {report['steps']}` repeats them" in card


def test_train_synthetic_model_sizes():
    """The sizes the README quotes: about 0.6 M parameters for `small` (the demo model), 5 M for `large`."""
    script = load_benchmark_script("train_synthetic")
    parameters = {}
    for size in ("small", "large"):
        config = script.model_config(script.parse_args(["--model", size]))
        model = Mask2FormerVideoForVideoInstanceSegmentation(config)
        parameters[size] = sum(param.numel() for param in model.parameters())
    assert 0.5e6 < parameters["small"] < 0.7e6
    assert 4.5e6 < parameters["large"] < 5.5e6
