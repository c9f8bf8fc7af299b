"""Gradio components of the app that extend gradio's own (template components: the browser renders the base).

Gradio writes a ``.pyi`` stub next to a module that defines components; ``components.pyi`` is committed so that
nothing is written at run time.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import PIL.Image

from gradio.events import Dependency

class UploadImage(gr.Image):
    """``gr.Image`` whose decoding failures (not an image, truncated, a pixel bomb) reach the user as a clear
    message instead of a component crash. A template component: the browser renders the plain Image."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except PIL.Image.DecompressionBombError as err:
            raise _refusal("The image declares too many pixels to decode safely; downscale it (longest side at "
                           "most a few thousand pixels) and upload it again.") from err
        except (OSError, SyntaxError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
            raise _refusal("The upload is not a readable image. Upload a PNG, JPEG or WebP file.") from err
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component