"""One module per tab (edit, history, presenter): each has ``build(engine, store, user_state) -> handles`` and
module-level handler functions with explicit arguments (testable without a browser)."""
