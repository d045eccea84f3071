"""Validators compiled ahead of time by `python -m cspm.schemas.compile`: generated, do not edit."""
