"""Write docs/cli.md from the CLI itself, so the page always says what `rtml --help` says.

python scripts/cli_docs.py            # rewrite docs/cli.md
python scripts/cli_docs.py --check    # exit 1 if docs/cli.md is out of date (the tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer.main

from rtml.cli.main import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
HEADER = """# Command line: `rtml`

Generated from the CLI by `python scripts/cli_docs.py` (a test fails when this page and
`rtml --help` disagree). Every command also answers `--help`. Errors print one line
(`error: ...` with the fix) and exit with status 2; Ctrl-C exits with 130.
"""


# Typer ships its own copy of click: commands and contexts are duck-typed here.
Command = Any


def _is_group(command: Command) -> bool:
    return hasattr(command, "list_commands")


def _context(command: Command, name: str, parent: Any = None) -> Any:
    return command.context_class(command, parent=parent, info_name=name)


def _commands(group: Command, ctx: Any, prefix: str) -> list[tuple[str, Command]]:
    out: list[tuple[str, Command]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        path = f"{prefix} {name}"
        if _is_group(command):
            out.append((path, command))
            out.extend(_commands(command, _context(command, name, ctx), path))
        else:
            out.append((path, command))
    return out


def _param_line(param: Any, ctx: Any) -> str:
    record = param.get_help_record(ctx)
    if record is None:  # an argument
        return f"- `{param.human_readable_name}` (argument{', required' if param.required else ''})"
    names, help_text = record
    return f"- `{names}`: {help_text}" if help_text else f"- `{names}`"


def render() -> str:
    root = typer.main.get_command(app)
    ctx = _context(root, "rtml")
    parts = [HEADER, "## Commands\n"]
    commands = _commands(root, ctx, "rtml")
    for path, command in commands:
        short = command.get_short_help_str(limit=100)
        anchor = path.replace(" ", "-")
        parts.append(f"- [`{path}`](#{anchor}): {short}")
    parts.append("")
    for path, command in commands:
        sub = _context(command, path)
        anchor = path.replace(" ", "-")
        parts.append(f'<a id="{anchor}"></a>\n## `{path}`\n')
        parts.append((command.help or "").strip() + "\n")
        usage = " ".join(command.collect_usage_pieces(sub))
        parts.append(f"```console\n$ {path} {usage}\n```\n")
        if _is_group(command):
            parts.append("Sub-commands: " + ", ".join(f"`{n}`" for n in command.list_commands(sub)) + "\n")
            continue
        lines = [_param_line(p, sub) for p in command.get_params(sub) if p.name != "help"]
        if lines:
            parts.append("\n".join(lines) + "\n")
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not DOC.is_file() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run `python scripts/cli_docs.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
