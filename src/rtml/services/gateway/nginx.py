"""The NGINX configuration of rtml's gateway, rendered from ``nginx.conf.template``.

What it sets up (see docs/serving.md, "Gateway"):

- one ``upstream`` of the rtml server(s), with idle keep-alive connections to them, and
  ``proxy_next_upstream error timeout``: another server is tried only when one cannot be
  reached (a prediction is never sent twice);
- an API-key check (header ``X-API-Key``) on ``/predict/...`` and ``/events``: 401 without
  a valid key; the key is not passed on to the server. Other paths (``/health``,
  ``/ready``, ``/metrics``, ``/features``, the OpenAPI document) are passed as they are;
- body limits per path (``client_max_body_size``) from the server's own limits, client
  and upstream timeouts, and ``X-Request-ID`` (the client's, or one made by NGINX);
- NGINX's own errors (413, 502, 504) as the server's JSON error bodies; a JSON access log;
- every file NGINX writes (pid, logs, temp dirs) under one run directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rtml.errors import ConfigError

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_UPSTREAM = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):(\d{1,5})$")
_KEY = re.compile(r"^[A-Za-z0-9._~+/=\-]{16,256}$")


@dataclass(frozen=True)
class GatewayOptions:
    """What ``rtml gateway`` renders. Sizes in bytes, times in seconds."""

    conf: Path  # where the file goes (quoted in its header)
    run_dir: Path  # pid, logs, temp directories
    upstreams: tuple[str, ...] = ("127.0.0.1:8000",)
    listen: str = "127.0.0.1:8080"
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    predict_body_bytes: int = 5 << 20
    events_body_bytes: int = 5 << 20
    default_body_bytes: int = 1 << 20
    workers: str = "auto"
    worker_connections: int = 4096
    upstream_keepalive: int = 64
    connect_timeout_s: float = 2.0
    upstream_timeout_s: float = 30.0
    client_timeout_s: float = 10.0
    keepalive_timeout_s: float = 65.0
    retry_after_s: int = 5
    access_log: bool = True


def render(options: GatewayOptions) -> str:
    """The configuration text; raises :class:`ConfigError` for an option NGINX would refuse."""
    if not options.upstreams:
        raise ConfigError("the gateway needs at least one upstream. Fix: pass --upstream HOST:PORT")
    for upstream in options.upstreams:
        if not _UPSTREAM.match(upstream):
            raise ConfigError(f"upstream {upstream!r} is not HOST:PORT. Fix: e.g. --upstream 127.0.0.1:8000")
    if not _UPSTREAM.match(options.listen) and not options.listen.isdigit():
        raise ConfigError(
            f"listen address {options.listen!r} is not HOST:PORT or PORT. Fix: e.g. 127.0.0.1:8080"
        )
    if not options.api_keys:
        raise ConfigError(
            "the gateway needs at least one API key for /predict and /events. Fix: set the "
            "environment variable named by --api-key-env (default RTML_API_KEY)"
        )
    for key in options.api_keys:
        if not _KEY.match(key):
            raise ConfigError(
                "an API key must be 16 to 256 characters of letters, digits and . _ ~ + / = -. "
                "Fix: e.g. `openssl rand -hex 24`"
            )
    run_dir = options.run_dir.resolve()
    values = {
        "conf": str(options.conf.resolve()),
        "run_dir": str(run_dir),
        "workers": options.workers,
        "worker_connections": str(options.worker_connections),
        "access_log": f"{run_dir}/access.log rtml buffer=64k flush=1s" if options.access_log else "off",
        "keepalive_timeout": _seconds(options.keepalive_timeout_s),
        "client_timeout": _seconds(options.client_timeout_s),
        "default_body": str(options.default_body_bytes),
        "predict_body": str(options.predict_body_bytes),
        "events_body": str(options.events_body_bytes),
        "api_keys": "\n".join(f'        "{key}" 1;' for key in options.api_keys),
        "servers": "\n".join(f"        server {u} max_fails=3 fail_timeout=5s;" for u in options.upstreams),
        "upstream_keepalive": str(options.upstream_keepalive),
        "listen": options.listen,
        "connect_timeout": _seconds(options.connect_timeout_s),
        "upstream_timeout": _seconds(options.upstream_timeout_s),
        "next_upstream_tries": str(len(options.upstreams)),
        "retry_after": str(options.retry_after_s),
    }
    text = TEMPLATE.read_text()
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if missing:  # a template edited without this function
        raise ConfigError(f"{TEMPLATE}: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def write(options: GatewayOptions) -> Path:
    """Render the configuration into ``options.conf`` (mode 0600: it holds the keys) and
    make the run directory and its temp directories."""
    text = render(options)
    for sub in ("", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (options.run_dir / sub).mkdir(parents=True, exist_ok=True)
    options.conf.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(options.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(options.conf, 0o600)
    return options.conf


def keys_from_env(name: str, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The API keys in the environment variable ``name``: one, or several separated by commas."""
    env = environ if environ is not None else dict(os.environ)
    raw = env.get(name, "")
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise ConfigError(
            f"the environment variable {name} holds no API key. Fix: export {name}=<key> "
            "(several keys: comma-separated), e.g. `export RTML_API_KEY=$(openssl rand -hex 24)`"
        )
    return keys


def _seconds(value: float) -> str:
    return f"{int(value * 1000)}ms" if value < 1 or value != int(value) else f"{int(value)}s"
