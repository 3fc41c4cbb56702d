"""Keyword tables that turn the statement tree into the typed model, one module per family of blocks."""
