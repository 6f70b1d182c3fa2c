"""The inference core: [`segment_video`] (whole or clip by clip) returning [`VideoInstances`].

- `segment`: the one entry point, and the whole-video path;
- `clip_by_clip`: windows of a long video, matched and merged into tracks, in bounded memory;
- `instances`: the result type, masks upsampled per frame when asked for, RLEs and YouTube-VIS records.

Instance selection and mask geometry (`processing/post_processing.py`) and the YouTube-VIS formats (`ytvis/`) are
the layers below it.
"""
