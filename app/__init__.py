"""ReasonBrain Studio: the Gradio app (settings, engine, history store, tabs) around the ``reasonbrain`` library."""
