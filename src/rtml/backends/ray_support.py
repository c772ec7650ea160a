"""What the Ray backends share (the trainer and Ray Serve): a fast reachability check of a
cluster address, quiet Ray loggers, and the first line of an error."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator, Sequence

from rtml.errors import BackendUnavailableError

CONNECT_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"ray://": 10001, "": 6379}  # Ray Client server, GCS


def check_reachable(address: str, setting: str) -> None:
    """Fail in seconds, not Ray's minutes of retries, when nothing listens at ``address``
    (``setting`` names the rtml.yaml key to fix, e.g. ``trainer.address``)."""
    scheme = "ray://" if address.startswith("ray://") else ""
    hostport = address[len(scheme) :]
    host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    try:
        with socket.create_connection((host, int(port or DEFAULT_PORTS[scheme])), CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        raise BackendUnavailableError(
            f"cannot reach the Ray cluster at {address!r}: {exc}. Fix: start it (`ray start --head`), "
            f"fix {setting}, or leave {setting} unset for a local Ray"
        ) from None


@contextlib.contextmanager
def quiet_loggers(names: Sequence[str], level: int) -> Iterator[None]:
    """Raise the level of Ray's loggers ``names`` for the block, then restore them."""
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, old in saved.items():
            logging.getLogger(name).setLevel(old)


def first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
