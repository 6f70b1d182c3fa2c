"""Pictures: which instances are drawn, and in which order."""

import numpy as np

from modeling_m2f_video.visualization import draw_instances, select_for_display


def box_masks(num_frames: int, top: int, left: int, size: int = 4, shape=(16, 16)) -> list[np.ndarray]:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return [mask] * num_frames


def test_select_for_display_keeps_the_best_copy_of_each_object():
    instances = [
        {"score": 0.6, "label": "b", "masks": box_masks(3, 0, 0)},  # same object as the 0.9 one, other class
        {"score": 0.9, "label": "a", "masks": box_masks(3, 0, 0)},
        {"score": 0.7, "label": "c", "masks": box_masks(3, 8, 8)},  # another object
        {"score": 0.3, "label": "d", "masks": box_masks(3, 12, 0)},  # below the score threshold
    ]
    shown = select_for_display(instances, min_score=0.5, max_overlap=0.8)
    assert [instance["label"] for instance in shown] == ["a", "c"]


def test_better_instances_are_drawn_on_top():
    frame = np.zeros((16, 16, 3), dtype=np.uint8)
    [mask] = box_masks(1, 4, 4)
    colours = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)  # best first: red, then blue
    drawn = draw_instances(frame, [mask, mask], colours, ["", ""])
    centre = drawn[6, 6]
    assert centre[0] > centre[2]  # red (the better instance) covers blue
