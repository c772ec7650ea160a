"""``rtml``: one command for the whole pipeline. Each sub-command lives in its own module."""

from __future__ import annotations

import sys

import typer

from rtml.cli import (
    apply_cmd,
    dataset_cmd,
    demo_cmd,
    engine_cmd,
    features_cmd,
    gateway_cmd,
    indexer_cmd,
    init_cmd,
    models_cmd,
    produce_cmd,
    registry_cmd,
    replay_cmd,
    serve_cmd,
    status_cmd,
    train_cmd,
    up_cmd,
    validator_cmd,
)
from rtml.errors import RtmlError

app = typer.Typer(
    name="rtml",
    help="Real-time ML from one set of definitions: events -> features -> model -> predictions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    init_cmd,
    apply_cmd,
    produce_cmd,
    replay_cmd,
    registry_cmd,
    validator_cmd,
    indexer_cmd,
    engine_cmd,
    serve_cmd,
    status_cmd,
    up_cmd,
    gateway_cmd,
    dataset_cmd,
    features_cmd,
    train_cmd,
    models_cmd,
    status_cmd,
    demo_cmd,
):
    module.register(app)


def main() -> None:
    """Entry point: runs the app and turns an ``RtmlError`` into one clear line and exit 2."""
    try:
        app(standalone_mode=False)
    except RtmlError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.secho("aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
