"""What the serving integration tests share: ports, the NGINX binary, a tiny model, waiting."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import xgboost as xgb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_binary() -> str:
    for candidate in (os.environ.get("RTML_TEST_NGINX"), shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "NGINX is not installed: start the services with `make services` (bash scripts/services.sh "
        "start installs the Debian package nginx) or set RTML_TEST_NGINX to an nginx binary",
        pytrace=False,
    )


def train(names: list[str], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 2.0, size=(400, len(names))).astype(np.float32)
    y = (x[:, 0] + x[:, 2] - x[:, 5] + rng.normal(size=400) > 3).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": seed},
        xgb.DMatrix(x, label=y, feature_names=names),
        num_boost_round=12,
    )
    return bytes(booster.save_raw("ubj"))


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout}s")
