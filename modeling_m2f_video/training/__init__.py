"""Training the video Mask2Former with Accelerate (`m2f-video train`, `accelerate launch -m modeling_m2f_video.train`).

- `config`: [`TrainingConfig`], the recipe and every option of a run;
- `data`: the split folder and the clip sampler (clip `n` is a function of `(seed, n)`);
- `model_setup`: starting point, parameter groups, learning-rate schedule;
- `loop`: the Accelerate loop ([`train`]);
- `evaluation`: the YouTube-VIS metric during and after training;
- `checkpoints`: resumable checkpoints (tensors and JSON only, written atomically), the rules of the output
  folder, and the final `from_pretrained` folder.
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    from .config import SCHEDULES, TrainingConfig, TrainingResult
    from .loop import TrainingDivergedError, train

__getattr__, __dir__, __all__ = attach(
    __name__, {"config": ["SCHEDULES", "TrainingConfig", "TrainingResult"], "loop": ["TrainingDivergedError", "train"]}
)
