"""The web app's defaults, in a module of their own so that the command line reads them without importing Gradio."""

DEFAULT_MAX_FRAMES = 300  # longest video accepted, in frames, so that a run answers in minutes on a CPU
DEFAULT_TOP_K = 10
DEFAULT_THRESHOLD = 0.5  # as `m2f-video demo`: instances the demo model is confident about
