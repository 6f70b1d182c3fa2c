"""The YouTube-VIS metric: official numbers, from Python (`metric`) or through `evaluate` (`youtube_vis/`)."""
