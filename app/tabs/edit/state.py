"""The Edit tab's session: where this browser tab is in its chain (one ``EditSession`` per tab, in ``gr.State``).

An ``EditSession`` is immutable (handlers return a new one with ``dataclasses.replace``), deep-copies (gradio copies
the initial value for every browser tab), hashes by value (gradio's ``deep_hash`` of a state that has change
listeners) and reads like the mapping it replaced (``session["chain_id"]``; ``dict(session)`` is its plain,
JSON-serialisable form).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class EditSession(Mapping[str, Any]):
    """One browser tab's position in the Edit tab.

    - ``chain_id``: the chain being edited; None -> the next edit starts a new chain from the uploaded image
    - ``step_id``: the step shown in the result panel (None: nothing edited yet / the source is shown)
    - ``base_id``: the step whose *output* the next edit starts from; None -> the chain's source image
    - ``input_rel``: the stored image the next edit reads (the source, or ``base_id``'s output)
    - ``regions``: labels / scores / attention / names of the shown step (for clicks on the region image)
    """

    chain_id: str | None = None
    step_id: str | None = None
    base_id: str | None = None
    input_rel: str | None = None
    regions: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_state(cls, value: Any) -> EditSession:
        """The session a handler received: an ``EditSession`` as is; None (no session yet) -> an empty one; a
        mapping with a subset of the fields (the dict this type replaced) -> those fields, the rest empty. Anything
        else, or a mapping with other keys, is a bug: ``TypeError`` naming what arrived."""
        if isinstance(value, cls):
            return value
        if value is None:
            return cls()
        if isinstance(value, Mapping):
            unknown = sorted(str(k) for k in value if k not in FIELDS)
            if unknown:
                raise TypeError(f"not an edit session: unknown keys {unknown} (expected some of {list(FIELDS)})")
            return cls(**{k: value[k] for k in FIELDS if k in value and value[k] is not None})
        raise TypeError(f"not an edit session: {type(value).__name__} (expected EditSession, a mapping or None)")

    # read as a mapping: session["chain_id"], dict(session), {**session}
    def __getitem__(self, key: str) -> Any:
        if key not in FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)

    def __hash__(self) -> int:  # by value (regions is a dict): equal sessions hash alike
        return hash(json.dumps(dict(self), sort_keys=True, default=repr))


FIELDS = tuple(f.name for f in dataclasses.fields(EditSession))


def empty_session() -> EditSession:
    """A session with nothing open (``gr.State``'s initial value)."""
    return EditSession()
