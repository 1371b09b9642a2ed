"""Print the configuration reference (every setting, its variable, default and meaning).

The README's table is this script's output; a unit test keeps the two in step.
Usage: ``python scripts/config_reference.py``
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from vigil.config import Settings


def rows(model: type[BaseModel], prefix: str = "VIGIL_") -> Iterator[tuple[str, str, str]]:
    """``(variable, default, description)`` for every leaf setting of ``model``."""
    for name, field in model.model_fields.items():
        var = f"{prefix}{name.upper()}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from rows(annotation, var + "__")
            continue
        if field.default_factory is not None:
            default = "(computed)" if name != "cache_dir" else "~/.cache/vigil"
        elif field.default is PydanticUndefined or field.default is None:
            default = "(unset)"
        else:
            default = str(field.default) or '""'
        yield var, default, field.description or ""


def markdown() -> str:
    """The reference as a Markdown table."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{var}` | `{default}` | {text} |" for var, default, text in rows(Settings)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
