"""Write docs/configuration-reference.md from the config models: every `rtml.yaml` key, its
type, its default and the comment written above it in the code.

    python scripts/config_docs.py            # rewrite the page
    python scripts/config_docs.py --check    # exit 1 if it is out of date (the tests run this)
"""

from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from rtml.config import RtmlConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration-reference.md"
HEADER = """# `rtml.yaml` reference

Generated from the configuration models by `python scripts/config_docs.py` (a test fails
when this page and the code disagree). How the file, the `RTML_*` variables and the
defaults combine: [configuration.md](configuration.md).

A section with a `type` key picks a backend; the keys listed under each backend are the
only ones it accepts (an unknown key is an error that names it).
"""
_FIELD = re.compile(r"^\s+([a-z_][a-z0-9_]*)\s*:")


def field_comments(cls: type) -> dict[str, str]:
    """The ``#`` comment lines right above each field of ``cls``, joined."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _FIELD.match(line)
        if match and pending:
            comments[match.group(1)] = " ".join(pending)
        pending = []
    return comments


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The config models an annotation can hold (a union of backends, an optional section)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("pathlib.", "").replace("NoneType", "None")
    text = re.sub(r"<class '([^']+)'>", r"\1", text)
    text = re.sub(r"\b(?:rtml|pydantic)\.[\w.]*\.(\w+)", r"\1", text)
    return text.replace("|", "or")


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        try:
            value = info.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(section)"
        return f"`{value!r}`"
    if info.default is PydanticUndefined:
        return "(required)"
    if isinstance(info.default, Path):
        return f"`{info.default}`"
    return f"`{info.default!r}`"


def _section(model: type[BaseModel], path: str, out: list[str], seen: set[tuple[str, type]]) -> None:
    if (path, model) in seen:
        return
    seen.add((path, model))
    comments = field_comments(model)
    doc = inspect.cleandoc(model.__doc__ or "").replace("\n", " ")
    kind = model.model_fields.get("type")
    title = f"`{path}`" + (f" with `type: {kind.default}`" if kind is not None else "")
    out.append(f"### {title}\n")
    if doc:
        out.append(doc + "\n")
    out.append("| key | type | default | meaning |\n|---|---|---|---|")
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        models = _models(info.annotation)
        meaning = comments.get(name, "")
        if models:
            nested.extend((f"{path}.{name}", m) for m in models)
            meaning = (meaning + " " if meaning else "") + "(see below)"
        out.append(
            f"| `{name}` | {_type_name(info.annotation)} | {_default(info)} | {meaning.replace('|', '/')} |"
        )
    out.append("")
    for sub_path, sub in nested:
        _section(sub, sub_path, out, seen)


def render() -> str:
    out = [HEADER, "## Top level\n", "| key | type | default | meaning |", "|---|---|---|---|"]
    comments = field_comments(RtmlConfig)
    sections: list[tuple[str, type[BaseModel]]] = []
    for name, info in RtmlConfig.model_fields.items():
        models = _models(info.annotation)
        if models:
            sections.extend((name, m) for m in models)
            choices = ", ".join(
                f"`{m.model_fields['type'].default}`" for m in models if "type" in m.model_fields
            )
            meaning = comments.get(name, "") + (f" Backends: {choices}." if choices else "")
            out.append(f"| `{name}` | section | | {meaning.strip()} |")
        else:
            out.append(
                f"| `{name}` | {_type_name(info.annotation)} | {_default(info)} | {comments.get(name, '')} |"
            )
    out.append("\n## Sections\n")
    seen: set[tuple[str, type]] = set()
    for path, model in sections:
        _section(model, path, out, seen)
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not DOC.is_file() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run `python scripts/config_docs.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
