"""``rtml gateway``: write the NGINX configuration of the gateway in front of ``rtml serve``.

rtml gateway --out .rtml/gateway/nginx.conf [--upstream 127.0.0.1:8000 ...] [--listen 127.0.0.1:8080]
             [--api-key-env RTML_API_KEY]
nginx -c "$PWD/.rtml/gateway/nginx.conf"
"""

from __future__ import annotations

from pathlib import Path

import typer

from rtml.cli.common import ProjectOption, console, open_project


def register(app: typer.Typer) -> None:
    @app.command("gateway")
    def gateway(
        out: Path = typer.Option(..., "--out", help="Where to write the NGINX configuration (mode 0600)."),
        upstream: list[str] = typer.Option(
            [],
            "--upstream",
            help="A server HOST:PORT behind the gateway (repeat for several) [server.host:server.port].",
        ),
        listen: str = typer.Option("127.0.0.1:8080", "--listen", help="Where NGINX listens (HOST:PORT)."),
        api_key_env: str = typer.Option(
            "RTML_API_KEY",
            "--api-key-env",
            help="Environment variable holding the API key(s) of /predict and /events (comma-separated).",
        ),
        run_dir: Path | None = typer.Option(
            None, "--run-dir", help="NGINX's pid, logs and temp files [the directory of --out, /run]."
        ),
        workers: str = typer.Option("auto", "--workers", help="NGINX worker processes (a number or auto)."),
        timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the server's answer."),
        access_log: bool = typer.Option(
            True, "--access-log/--no-access-log", help="Write a JSON access log."
        ),
        project_dir: Path = ProjectOption,
    ) -> None:
        """Write an NGINX configuration: upstream keep-alive, timeouts, body limits (the
        server's own: server.ingest.max_body_bytes, server.predict.max_body_bytes) and an
        API-key check (X-API-Key) on /predict and /events. See docs/serving.md."""
        from rtml.services.gateway.nginx import GatewayOptions, keys_from_env, write

        project = open_project(project_dir)
        server = project.config.server
        options = GatewayOptions(
            conf=out,
            run_dir=run_dir if run_dir is not None else out.parent / "run",
            upstreams=tuple(upstream) or (f"{server.host}:{server.port}",),
            listen=listen,
            api_keys=keys_from_env(api_key_env),
            predict_body_bytes=server.predict.max_body_bytes,
            events_body_bytes=server.ingest.max_body_bytes,
            workers=workers,
            upstream_timeout_s=timeout,
            retry_after_s=server.ingest.retry_after_s,
            access_log=access_log,
        )
        path = write(options)
        console.print(f"wrote {path} (upstreams {', '.join(options.upstreams)}; listening on {listen})")
        console.print(f"run it with: nginx -c {path.resolve()}")
