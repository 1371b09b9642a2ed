"""Example Vigil plugins (see docs/plugins.md): a parser, a stage and a sink."""

__version__ = "0.1.0"
