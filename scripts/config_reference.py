"""Print the configuration reference (every setting, its variable, default and meaning).

The README's table is this script's output; a unit test keeps the two in step.
Usage: ``python scripts/config_reference.py [--write README.md]``
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

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
            default = str(field.default_factory()).replace(str(Path.home()), "~")
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


START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def update_readme(path: Path) -> None:
    """Replace the table between the markers in ``path``."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} lacks the {START} and {END} markers around the table")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{START}\n{markdown()}\n{END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        update_readme(Path(sys.argv[2]))
    else:
        print(markdown())
