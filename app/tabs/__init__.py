"""One module or package per tab (edit, history, presenter, rate): each has a ``build(...) -> handles`` and
module-level handler functions with explicit arguments (testable without a browser)."""
