"""Experiment runners, result schema and run plans (imports heavy dependencies lazily)."""
