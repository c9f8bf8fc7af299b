"""Preload a few multi-hop demo chains from the synthetic reasoning world (first start only).

Each demo chain is a ``reasonbrain.synthworld.sample_chain(seed)``: a rendered scene and 2-3 hypothetical
instructions where every step edits the previous result. The engine really runs them (so the Presenter shows
what this checkpoint does), and they are stored under the ``demo`` user with ``is_demo=True``: every visitor
can replay them in the Presenter tab, nobody can edit them. In reason-then-edit mode none are preloaded: its
pretrained backbones would make real (GPU) edits of synthetic scenes at start-up, which show little of a photo model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from app.engine import EditRequest, Engine
from app.identity import DEMO_USER
from app.store import ChainInfo, NotFound, Store
from reasonbrain.configuration import REASON_THEN_EDIT_MODE

logger = logging.getLogger(__name__)

DEMO_SEEDS: tuple[int, ...] = (3, 2, 1)  # a 3-hop banana, ice block -> puddle, a snowman in the sun


def preload_demo_chains(engine: Engine, store: Store, *, seeds: Sequence[int] = DEMO_SEEDS) -> list[ChainInfo]:
    """Create the demo chains unless the store already has some. Returns the chains created (maybe none).

    A chain that fails half-way is removed again, so a restart retries cleanly."""
    if engine.mode == REASON_THEN_EDIT_MODE:
        logger.info("reason-then-edit mode: no demo chains preloaded (no start-up edits); the Presenter offers "
                    "users' own chains")
        return []
    if store.has_demo_chains():
        return []
    from reasonbrain.synthworld import sample_chain

    resolution = int(engine.defaults()["resolution"])
    created: list[ChainInfo] = []
    for n, seed in enumerate(seeds, start=1):
        samples = sample_chain(seed, resolution=resolution)
        categories = " → ".join(s.record.category for s in samples)
        title = f"Demo {n} · {samples[0].record.target.name}: {categories}"
        chain = store.create_chain(DEMO_USER, samples[0].src, title=title, is_demo=True)
        try:
            parent, input_ref, image = None, chain.source_image, samples[0].src
            for k, sample in enumerate(samples):
                result = engine.edit(EditRequest(image=image, instruction=sample.record.instruction,
                                                 seed=seed * 100 + k))
                step = store.add_step(
                    DEMO_USER, chain.id, parent,
                    instruction=result.output.instruction, input_image=input_ref, output_image=result.image,
                    seed=int(result.seed), settings=result.settings, preset=result.preset,
                    checkpoint_hash=result.checkpoint_hash, timings=result.timings, details=result.details,
                )
                parent, input_ref, image = step.id, step.output_image, result.image
        except BaseException:
            with contextlib.suppress(NotFound, ValueError):
                store.delete_chain(DEMO_USER, chain.id)
            raise
        created.append(store.get_chain(DEMO_USER, chain.id).chain)
        logger.info("demo chain %r: %d steps", title, len(samples))
    return created
