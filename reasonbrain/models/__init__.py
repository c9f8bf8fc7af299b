"""ReasonBrain modules (paper section 3.2)."""
