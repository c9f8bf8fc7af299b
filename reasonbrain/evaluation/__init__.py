"""Evaluation: the paper's automatic metrics (``metrics``, ``embedders``, ``judge``), the ``evaluate`` runner behind
``python -m reasonbrain evaluate``, human-rating aggregation (``ratings``) and synth-world reasoning accuracy
(``synth_eval``). Importing this package loads no model."""
