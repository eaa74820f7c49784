"""The web editor's page: a gradio layout whose buttons call ``Editor`` (linkgan.webapp.session).

    linkgan serve                       # the toyfaces model that ships with linkgan
    linkgan serve --ckpt runs/NAME --port 7860

Nothing here computes anything; each handler calls one Editor method and shows the result:
the image with its regions outlined, a message line, the recipe, and download buttons for
the image (PNG at the model's resolution) and the recipe (JSON).
"""


import inspect
import os

from .session import EditHistory, Editor, EditorError

DEFAULT_CHECKPOINT = "builtin:toyfaces"

CSS = """
#image img, #gallery img { image-rendering: pixelated; }
#status { min-height: 1.6em; }
#status .error, #status strong { color: #c62828; }
.link-box { padding: 8px; }
"""


class WebExtraError(RuntimeError):
    """gradio (the ``web`` extra) is not installed."""


def import_gradio():
    """gradio, imported without telemetry or update checks (the server may have no internet)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError as e:
        raise WebExtraError(f"the web editor needs gradio ({e}); install it with: "
                            f"pip install \"linkgan[web]\"") from None
    return gr


def _accepted(fn, kwargs: dict) -> dict:
    """The keyword arguments ``fn`` accepts: options moved between gradio 5 and 6."""
    # Named parameters only: gradio 6's Blocks() takes **kwargs but warns about the options it
    # moved to launch().
    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def build_app(editor: Editor):
    """The gradio Blocks of the editor (not launched)."""
    gr = import_gradio()
    names = editor.link_names
    start = editor.start(editor.gallery_seeds[0] if editor.gallery_seeds else 0)
    theme = gr.themes.Soft(primary_hue="cyan", secondary_hue="pink")
    style = {"theme": theme, "css": CSS}
    # delete_cache: gradio's copies of served images and uploads go after an hour.
    blocks_kwargs = _accepted(gr.Blocks.__init__, {"title": "LinkGAN editor", "analytics_enabled": False,
                                                   "delete_cache": (3600, 3600)})
    if "css" in inspect.signature(gr.Blocks.__init__).parameters:  # gradio 5: the style goes to Blocks
        blocks_kwargs.update(style)
        style = {}

    def outputs_for(history: EditHistory, outlines: bool, message: str | None = None, error: bool = False):
        rendered = editor.render(history, outlines)
        png, js = editor.write_files(history, rendered)
        text = message or f"Showing {history.current.describe()}."
        if error:
            text = f"**Error:** {message}"
        edits = history.current.edits
        last = edits[-1] if edits else None
        mixes = [gr.update(value=last["mix"] if last and last["link"] == n else 1.0) for n in names]
        strengths = [gr.update(value=last["strength"]) if last and last["link"] == n and last["op"] == "perturb"
                     else gr.update() for n in names]
        recipe_text = _recipe_text(editor, history)
        return [history, rendered.display, text, gr.update(value=str(png)), gr.update(value=str(js)), recipe_text,
                *mixes, *strengths]

    def run(fn, history, outlines, *args, done: str | None = None):
        try:
            new = fn(history, *args)
        except EditorError as e:
            return outputs_for(history, outlines, str(e), error=True)
        return outputs_for(new, outlines, done)

    first = editor.render(start)
    first_png, first_js = editor.write_files(start, first)

    with gr.Blocks(**blocks_kwargs) as demo:
        history = gr.State(start)
        regions = [n for n in names if not editor.is_shared(n)]
        links_text = ", ".join(f"**{n}**" for n in regions) or "none (a vanilla model: nothing to edit locally)"
        shared_text = (f" **shared** are {editor.pipe.links.shared} axes that no region owns: they may change "
                       "the whole image." if editor.pipe.links.shared else "")
        gr.Markdown(f"## LinkGAN editor\nModel `{editor.checkpoint}` ({editor.pipe.resolution} px). "
                    f"Links: {links_text}. Each link owns a group of latent axes tied to its outlined region: "
                    f"changing them should change that region only.{shared_text}")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=280):
                gallery = gr.Gallery(value=editor.gallery(), label="Pick an image", columns=3, allow_preview=False,
                                     format="png", elem_id="gallery", **_accepted(gr.Gallery.__init__,
                                                                                  {"object_fit": "contain"}))
                with gr.Row():
                    seed_box = gr.Number(value=start.current.image, label="Seed", precision=0, minimum=0,
                                         elem_id="seed", scale=2)
                    open_seed = gr.Button("Open seed", elem_id="open-seed", scale=1)
                with gr.Accordion("Upload a photo", open=True):
                    upload = gr.File(label=f"Photo (PNG, JPEG or WebP, up to {editor.max_upload_bytes // 2**20} MB)",
                                     type="filepath", elem_id="upload")
                    gr.Markdown(f"The photo is inverted into the model's W+ space ({editor.invert_steps or 'default'} "
                                "steps), then edited like a seed." if editor.can_invert else
                                "This linkgan cannot invert photos yet (LinkGANPipeline.invert is missing).")
            with gr.Column(scale=4, min_width=320):
                image = gr.Image(value=first.display, label="Image", type="pil", format="png", interactive=False,
                                 elem_id="image", **_accepted(gr.Image.__init__, {"buttons": ["fullscreen"]}))
                status = gr.Markdown(f"Showing {start.current.describe()}.", elem_id="status")
                with gr.Row():
                    undo = gr.Button("Undo", elem_id="undo", size="sm")
                    redo = gr.Button("Redo", elem_id="redo", size="sm")
                    revert = gr.Button("Revert edits", elem_id="revert", size="sm")
                    outlines = gr.Checkbox(value=True, label="Show regions", elem_id="outlines")
                with gr.Row():
                    dl_image = gr.DownloadButton("Download image (PNG)", value=str(first_png),
                                                 elem_id="download-image", size="sm")
                    dl_recipe = gr.DownloadButton("Download recipe (JSON)", value=str(first_js),
                                                  elem_id="download-recipe", size="sm")
                with gr.Accordion("Recipe: replay with `linkgan edit --recipe FILE --out image.png`", open=False):
                    recipe = gr.Code(value=_recipe_text(editor, start), language="json", interactive=False,
                                     label="Recipe (JSON)", elem_id="recipe")
            with gr.Column(scale=3, min_width=260):
                mix_sliders, strength_sliders, link_rows = [], [], []
                for name in names:
                    with gr.Group(elem_classes="link-box"):
                        gr.Markdown(f"### {name}" + (" (the whole image)" if editor.is_shared(name) else ""))
                        with gr.Row():
                            resample = gr.Button(f"Resample {name}", variant="primary", elem_id=f"resample-{name}",
                                                 scale=2)
                            perturb = gr.Button(f"Perturb {name}", elem_id=f"perturb-{name}", scale=1)
                        strength = gr.Slider(0.0, 3.0, value=1.0, step=0.05, label="Strength (perturb)",
                                             elem_id=f"strength-{name}")
                        mix = gr.Slider(0.0, 1.0, value=1.0, step=0.01, label="Blend: before ↔ after its latest edit",
                                        elem_id=f"mix-{name}")
                    mix_sliders.append(mix)
                    strength_sliders.append(strength)
                    link_rows.append((name, resample, perturb, strength, mix))
                if names:
                    with gr.Accordion("Transplant", open=True):
                        t_link = gr.Dropdown(names, value=names[0], label="Region", elem_id="transplant-link")
                        t_seed = gr.Number(value=start.current.image + 1, label="From the image of seed", precision=0,
                                           minimum=0, elem_id="transplant-seed")
                        t_go = gr.Button("Transplant", elem_id="transplant")

        outputs = [history, image, status, dl_image, dl_recipe, recipe, *mix_sliders, *strength_sliders]

        def on_gallery(history, outlines, evt: gr.SelectData):
            seed = editor.gallery_seeds[evt.index]
            return [*run(editor.pick_seed, history, outlines, seed), seed]

        # Progress shows on the image only, not on every slider and button the answer updates.
        on = _accepted(undo.click, {"show_progress_on": [image]})
        gallery.select(on_gallery, [history, outlines], [*outputs, seed_box], **on)
        for trigger in (open_seed.click, seed_box.submit):
            trigger(lambda h, o, s: run(editor.pick_seed, h, o, s), [history, outlines, seed_box], outputs, **on)
        undo.click(lambda h, o: run(editor.undo, h, o), [history, outlines], outputs, **on)
        redo.click(lambda h, o: run(editor.redo, h, o), [history, outlines], outputs, **on)
        revert.click(lambda h, o: run(editor.revert, h, o), [history, outlines], outputs, **on)
        outlines.change(lambda h, o: outputs_for(h, o), [history, outlines], outputs, **on)

        for name, resample, perturb, strength, mix in link_rows:
            resample.click(lambda h, o, n=name: run(editor.resample, h, o, n), [history, outlines], outputs, **on)
            perturb.click(lambda h, o, s, n=name: run(editor.perturb, h, o, n, s), [history, outlines, strength],
                          outputs, **on)
            strength.release(lambda h, o, s, n=name: run(editor.set_strength, h, o, n, s),
                             [history, outlines, strength], outputs, show_progress="hidden")
            mix.release(lambda h, o, t, n=name: run(editor.set_mix, h, o, n, t), [history, outlines, mix], outputs,
                        show_progress="hidden")
        if names:
            t_go.click(lambda h, o, n, s: run(editor.transplant, h, o, n, s), [history, outlines, t_link, t_seed],
                       outputs, **on)

        def on_upload(history, outlines, path, progress=gr.Progress()):
            # The file box is emptied after every upload, so that the next one is a new upload.
            if not path:
                return [*outputs_for(history, outlines), None]

            def report(step, total, *_):  # the projector also passes its loss
                progress((step, total), desc="Inverting the photo")

            progress(0, desc="Checking the photo")
            return [*run(editor.invert_photo, history, outlines, path, report,
                         done="Photo inverted: edit it like a seed (its recipe holds the latent)."), None]

        upload.upload(on_upload, [history, outlines, upload], [*outputs, upload], **on)
    demo._linkgan_style = style  # theme and css for launch() on gradio >= 6
    return demo


def _recipe_text(editor: Editor, history: EditHistory) -> str:
    from ..recipe import recipe_json

    return recipe_json(editor.recipe(history))


def serve(ckpt: str | None = None, host: str = "127.0.0.1", port: int = 7860, device: str = "auto",
          truncation: float = 1.0, invert_steps: int | None = 100, open_browser: bool = False, block: bool = True):
    """Loads the model, builds the page and serves it at http://HOST:PORT (blocking unless ``block=False``,
    which returns the launched Blocks; call ``.close()`` to stop it)."""
    import_gradio()  # before loading the model: a missing extra fails at once
    from ..pipeline import LinkGANPipeline

    spec = ckpt or DEFAULT_CHECKPOINT
    pipe = LinkGANPipeline.load(spec, device=device)
    # A run directory means its newest checkpoint now; recipes name the file, which stays put.
    name = spec if str(spec).startswith("builtin:") else str(pipe.source)
    editor = Editor(pipe, checkpoint=name, truncation=truncation, invert_steps=invert_steps)
    demo = build_app(editor)
    demo.queue(**_accepted(demo.queue, {"default_concurrency_limit": 2}))
    options = {"server_name": host, "server_port": int(port), "inbrowser": open_browser,
               "prevent_thread_lock": not block, "allowed_paths": [str(editor.out_dir)],
               # gradio's own limit only stops uploads far over the editor's, which explains its own.
               "max_file_size": 4 * editor.max_upload_bytes, "show_error": True, "ssr_mode": False,
               "footer_links": ["gradio"], "show_api": False, "quiet": False, **demo._linkgan_style}
    print(f"LinkGAN editor for {name} ({pipe.resolution} px, links: {', '.join(editor.link_names) or 'none'})",
          flush=True)
    demo.launch(**_accepted(demo.launch, options))
    return demo


__all__ = ["WebExtraError", "build_app", "import_gradio", "serve"]
