"""Plugins: parsers, stages and sinks that users install (public API: :mod:`vigil.ext`).

:mod:`~vigil.plugins.discovery` finds them (entry points or ``module:Class``) and checks
them; :mod:`~vigil.plugins.stages` runs plugin stages on the stage chain, each call
isolated and measured.
"""
