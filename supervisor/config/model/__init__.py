"""The typed configuration model: plain dataclasses, one module per family of blocks.

The model is what every role receives (as TOML, see ``supervisor.config.toml_io``): values are
validated, defaults are keepalived's, references are resolved by name. Fields hold plain types only
(str, int, float, bool, lists, nested dataclasses) so that TOML round-trips exactly; addresses are
kept as strings in canonical form. ``source`` fields say where a block came from (``FILE:LINE``) so
that a role can still name the configuration line when it finds a problem at run time.
"""
