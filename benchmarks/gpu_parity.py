"""SDPA vs eager attention parity on any device (made for CUDA, where the SDPA kernels differ from the CPU ones).

The same checks as `tests/test_attention.py`, run on `--device`: with tiny configs (ResNet and Swin, post-norm and
pre-norm), the fast path (scaled_dot_product_attention, head-broadcast masks) and the reference path
(`attn_implementation="eager"`) must give class logits and every decoder layer's mask logits within 1e-4, and
gradients within rtol 1e-3 / atol 1e-5. A full-size R50 clip is then compared too: its differences are printed,
and its top-k (query, label) pairs must be the same. Exits non-zero on any failure.

    python benchmarks/gpu_parity.py --device cuda
"""

from __future__ import annotations

import argparse
import sys

import torch
from benchmark_utils import load_benchmark_script

from modeling_m2f_video import Mask2FormerVideoConfig, Mask2FormerVideoForVideoInstanceSegmentation

inference = load_benchmark_script("bench_inference")

ATOL = 1e-4


def outputs_of(model, video: torch.Tensor, implementation: str, **kwargs):
    model.config._attn_implementation = implementation
    return model(video, output_auxiliary_logits=True, **kwargs)


def max_differences(fast, reference) -> dict[str, float]:
    """Largest absolute difference of the class logits and of the mask logits over all decoder predictions."""
    masks = [(fast.masks_queries_logits, reference.masks_queries_logits)] + [
        (a["masks_queries_logits"], b["masks_queries_logits"])
        for a, b in zip(fast.auxiliary_logits, reference.auxiliary_logits)
    ]
    return {
        "class_logits": float((fast.class_queries_logits - reference.class_queries_logits).abs().max()),
        "mask_logits": max(float((a - b).abs().max()) for a, b in masks),
    }


def tiny_model(preset: str, pre_norm: bool, device: str) -> Mask2FormerVideoForVideoInstanceSegmentation:
    """A tiny preset with post-norm or pre-norm decoder layers, seeded random weights, eval mode."""
    config = Mask2FormerVideoConfig.tiny(inference.TINY_BACKBONES[preset])
    config.pre_norm = pre_norm
    torch.manual_seed(0)
    return Mask2FormerVideoForVideoInstanceSegmentation(config).eval().to(device)


def check_tiny_inference(preset: str, pre_norm: bool, device: str) -> bool:
    model = tiny_model(preset, pre_norm, device)
    video = torch.randn(2, 3, 3, 64, 96, device=device)
    with torch.no_grad():
        differences = max_differences(outputs_of(model, video, "sdpa"), outputs_of(model, video, "eager"))
    return report(f"{preset} pre_norm={pre_norm} inference", differences, ATOL)


def check_tiny_gradients(device: str) -> bool:
    model = tiny_model("tiny-r50", False, device).train()
    video = torch.randn(1, 2, 3, 64, 64, device=device)
    labels = {
        "mask_labels": [torch.rand(2, 2, 64, 64, device=device).round()],
        "class_labels": [torch.tensor([1, 2], device=device)],
    }

    def gradients(implementation: str) -> dict[str, torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(0)
        outputs_of(model, video, implementation, **labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    fast, reference = gradients("sdpa"), gradients("eager")
    failures = [name for name in reference if not torch.allclose(fast[name], reference[name], rtol=1e-3, atol=1e-5)]
    print(
        f"tiny-r50 gradients: {len(reference)} tensors, {len(failures)} outside rtol 1e-3 / atol 1e-5 {failures[:3]}"
    )
    return not failures


def check_full_size(device: str, num_frames: int) -> bool:
    """R50 at 360x640: differences printed, same top-k pairs required."""
    model = inference.build_video_model("r50", 4, device)
    inputs = inference.make_inputs(num_frames, 360, 640, device)
    runs = {}
    for implementation in ("sdpa", "eager"):
        model.config._attn_implementation = implementation
        runs[implementation] = inference.run_video(model, inputs, inference.OFFICIAL_STYLE)
    differences = max_differences(runs["sdpa"][0], runs["eager"][0])
    parity = inference.topk_parity(runs["eager"], runs["sdpa"])
    print(f"r50 360x640 T={num_frames}: max |diff| {differences}, top-k {parity}")
    return parity["topk_agreement"] == 1.0


def report(name: str, differences: dict[str, float], atol: float) -> bool:
    ok = all(value <= atol for value in differences.values())
    print(f"{name}: max |sdpa - eager| {differences} -> {'ok' if ok else f'FAIL (> {atol})'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--full-size-frames", type=int, default=5, help="T of the full-size check (0 skips it)")
    args = parser.parse_args(argv)
    print(f"device: {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    torch.manual_seed(0)
    results = [
        check_tiny_inference(preset, pre_norm, args.device)
        for preset in inference.TINY_PRESETS
        for pre_norm in (False, True)
    ]
    results.append(check_tiny_gradients(args.device))
    if args.full_size_frames:
        results.append(check_full_size(args.device, args.full_size_frames))
    print(f"parity: {sum(results)}/{len(results)} checks passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
