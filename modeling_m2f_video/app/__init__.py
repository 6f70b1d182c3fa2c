"""The web app: `m2f-video app` serves a Gradio page to segment a video and look at its instances.

- `results`: the work on one video, on what the pipeline returns: the instances table, the overlay video and
  contact sheet of the instances shown, `results.json`;
- `interface`: the Gradio page and its event handlers (Gradio is imported only here);
- `local`: starts the app on a model folder or the shipped demo model (what the command runs);
- `space`: the files that make a folder written by `m2f-video export-hub` a Hugging Face Space running this app.

The app segments with the same pipeline call as `m2f-video predict` and draws with the same `visualization`
functions. Nothing here is imported by the package itself, so Gradio is needed only to run the app
(`pip install -e ".[app]"`).
"""
