"""The interactive web editor (``linkgan serve``): a gradio page over LinkGANPipeline.

``linkgan.webapp.session`` holds the logic and needs no browser or gradio;
``linkgan.webapp.app`` lays out the page (``pip install "linkgan[web]"``).
"""

from .session import EditHistory, Editor, EditorError, EditState

__all__ = ["EditHistory", "EditState", "Editor", "EditorError", "serve"]


def serve(*args, **kwargs):
    """Builds the page and serves it; see linkgan.webapp.app.serve."""
    from .app import serve as _serve

    return _serve(*args, **kwargs)
