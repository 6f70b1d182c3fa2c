"""The paper's twelve YouTube-VIS variants, as plain data.

Backbone shapes follow the official `configs/youtubevis_20{19,21}` files of Mask2Former; the
decoder is the same for all (256 channels, 8 heads, 9 masked-attention layers, 6 deformable
encoder layers). Swin-L uses 200 queries, every other variant 100.
"""

YTVIS_2019_CATEGORIES = (
    "person", "giant_panda", "lizard", "parrot", "skateboard", "sedan", "ape", "dog", "snake", "monkey",
    "hand", "rabbit", "duck", "cat", "cow", "fish", "train", "horse", "turtle", "bear",
    "motorbike", "giraffe", "leopard", "fox", "deer", "owl", "surfboard", "airplane", "truck", "zebra",
    "tiger", "elephant", "snowboard", "boat", "shark", "mouse", "frog", "eagle", "earless_seal", "tennis_racket",
)  # fmt: skip

YTVIS_2021_CATEGORIES = (
    "airplane", "bear", "bird", "boat", "car", "cat", "cow", "deer", "dog", "duck",
    "earless_seal", "elephant", "fish", "flying_disc", "fox", "frog", "giant_panda", "giraffe", "horse", "leopard",
    "lizard", "monkey", "motorbike", "mouse", "parrot", "person", "rabbit", "shark", "skateboard", "snake",
    "snowboard", "squirrel", "surfboard", "tennis_racket", "tiger", "train", "truck", "turtle", "whale", "zebra",
)  # fmt: skip

DATASET_CATEGORIES = {"ytvis2019": YTVIS_2019_CATEGORIES, "ytvis2021": YTVIS_2021_CATEGORIES}

# Backbone name -> (transformers backbone model_type, its config kwargs, test shortest side, queries).
BACKBONES = {
    "r50": ("resnet", {"depths": [3, 4, 6, 3]}, 360, 100),
    "r101": ("resnet", {"depths": [3, 4, 23, 3]}, 360, 100),
    "swin-tiny": ("swin", {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "window_size": 7}, 480, 100),
    "swin-small": ("swin", {"embed_dim": 96, "depths": [2, 2, 18, 2], "num_heads": [3, 6, 12, 24], "window_size": 7}, 480, 100),
    "swin-base": ("swin", {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32], "window_size": 12, "image_size": 384}, 480, 100),
    "swin-large": ("swin", {"embed_dim": 192, "depths": [2, 2, 18, 2], "num_heads": [6, 12, 24, 48], "window_size": 12, "image_size": 384}, 480, 200),
}  # fmt: skip

PRESETS = tuple(f"{backbone}-{dataset}" for backbone in BACKBONES for dataset in DATASET_CATEGORIES)
