"""Finding plugins: parsers, stages and sinks from installed packages or dotted paths.

A plugin is named either by an entry point of an installed package (groups
``vigil.parsers``, ``vigil.stages``, ``vigil.sinks``) or by a dotted path
``package.module:Class``, as Savant's pyfunc elements are. What the name resolves to must
subclass the public base of its kind (:mod:`vigil.ext`); options given beside the name are
the class's keyword arguments, checked against its signature before anything runs, so a
bad reference fails at start or at the REST call that names it, with a message naming the
plugin, and the running pipeline is left as it was.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from vigil.events.sinks import EventSink
from vigil.parsers import PARSERS
from vigil.parsers.base import Parser
from vigil.specs import PluginRef
from vigil.stages.base import FrameStage

log = logging.getLogger(__name__)

Kind = Literal["parser", "stage", "sink"]

#: Entry-point group of each kind.
GROUPS: dict[Kind, str] = {
    "parser": "vigil.parsers",
    "stage": "vigil.stages",
    "sink": "vigil.sinks",
}

_BASES: dict[Kind, type] = {"parser": Parser, "stage": FrameStage, "sink": EventSink}


class PluginError(ValueError):
    """A plugin reference cannot be used: unknown, not importable, not a subclass of its
    kind's base, bad options, or its constructor failed. The message names the plugin."""


@dataclass(frozen=True)
class PluginInfo:
    """What ``/api/v1/health`` shows of a loaded plugin."""

    kind: Kind
    name: str
    cls: str
    version: str


def resolve(kind: Kind, name: str) -> type[Any]:
    """The class ``name`` refers to, checked to subclass ``kind``'s base.

    Raises:
        PluginError: unknown name, import failure, missing attribute, wrong type.
    """
    base = _BASES[kind]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
        except Exception as e:  # the plugin's own import can fail any way
            raise PluginError(
                f"{kind} plugin {name!r}: cannot import module {module_name!r}: {e}"
            ) from e
        for part in attr.split("."):
            found = getattr(found, part, None)
            if found is None:
                raise PluginError(f"{kind} plugin {name!r}: module {module_name!r} has no {attr!r}")
    else:
        points = metadata.entry_points(group=GROUPS[kind], name=name)
        if not points:
            installed = ", ".join(installed_names(kind)) or "none"
            raise PluginError(
                f"unknown {kind} plugin {name!r} (entry points in {GROUPS[kind]!r}: "
                f"{installed}); install its package or give module:Class"
            )
        try:
            found = next(iter(points)).load()
        except Exception as e:
            raise PluginError(f"{kind} plugin {name!r}: loading its entry point failed: {e}") from e
    if not (isinstance(found, type) and issubclass(found, base)):
        raise PluginError(
            f"{kind} plugin {name!r} is {found!r}, not a subclass of vigil.ext.{base.__name__}"
        )
    return found


def find_parser(name: str) -> type[Parser]:
    """A parser plugin for the model config's ``vigil.parser`` (built-in names aside).

    Raises:
        PluginError: as :func:`resolve`; an unknown name lists the built-in parsers too.
    """
    if ":" in name or name in installed_names("parser"):
        return resolve("parser", name)
    raise PluginError(
        f"unknown parser {name!r}; built-in: {', '.join(sorted(PARSERS))}; installed "
        f"plugins ({GROUPS['parser']!r}): {', '.join(installed_names('parser')) or 'none'}; "
        "or give module:Class"
    )


def installed_names(kind: Kind) -> list[str]:
    """Names of the installed plugins of ``kind`` (entry points)."""
    return sorted({p.name for p in metadata.entry_points(group=GROUPS[kind])})


def check_options(kind: Kind, name: str, cls: type[Any], options: dict[str, Any]) -> None:
    """Check that ``options`` fit the signature of ``cls``'s constructor.

    Raises:
        PluginError: an unknown option, or a required one missing.
    """
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as e:
        raise PluginError(f"{kind} plugin {name!r}: bad options {options}: {e}") from e


def check_refs(kind: Kind, field: str, refs: Sequence[PluginRef]) -> None:
    """Resolve every reference of a settings list and check its options, constructing
    nothing (``vigil`` does this before it starts anything).

    Raises:
        PluginError: the first bad one, named by its place (``stages[1]: ...``).
    """
    for i, ref in enumerate(refs):
        try:
            check_options(kind, ref.plugin, resolve(kind, ref.plugin), ref.options)
        except PluginError as e:
            raise PluginError(f"{field}[{i}]: {e}") from e


def instantiate(kind: Kind, ref: PluginRef) -> tuple[Any, PluginInfo]:
    """Resolve, check and construct the plugin ``ref`` names.

    Raises:
        PluginError: as :func:`resolve` and :func:`check_options`, or the constructor raised.
    """
    cls = resolve(kind, ref.plugin)
    check_options(kind, ref.plugin, cls, ref.options)
    try:
        instance = cls(**ref.options)
    except Exception as e:
        raise PluginError(f"{kind} plugin {ref.plugin!r} failed to start: {e}") from e
    return instance, describe(kind, ref.plugin, cls)


@functools.lru_cache(maxsize=256)  # the health endpoint asks on every call
def describe(kind: Kind, name: str, cls: type[Any]) -> PluginInfo:
    """Name, class and version (its distribution's, else its module's ``__version__``)."""
    module = cls.__module__
    top = module.split(".", 1)[0]
    version = ""
    for dist in metadata.packages_distributions().get(top, []):
        try:
            version = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    if not version:
        version = str(getattr(sys.modules.get(module), "__version__", ""))
    return PluginInfo(kind, name, f"{module}:{cls.__qualname__}", version)
