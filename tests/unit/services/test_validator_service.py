"""The validation service on the embedded logs (memory, local) with the dead-letter table:
exact counts against the generator, original bytes in the dead letters, restarts that add
nothing, the offline ``rtml validate``, the invalid-rate alert and its webhook."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from typer.testing import CliRunner

from rtml.backends.dead_letter import DeadLetterSink, open_dead_letter_sink
from rtml.backends.event_log.base import EventLog, LogConsumer, LogRecord
from rtml.cli.main import app
from rtml.config import ValidatorAlertSettings
from rtml.core.validation import Deduper, Valid
from rtml.datagen import generate, to_log_record
from rtml.errors import RtmlError
from rtml.project import RAW_EVENTS, VALID_EVENTS, Project
from rtml.services.logging import JsonFormatter
from rtml.services.validator import DUPLICATE_EVENTS, ValidatorService, audit, counts
from rtml.services.validator.alerts import InvalidRateWindow
from rtml.services.validator.reading import read_topic
from rtml.services.validator.routing import EVENT_ID_HEADER, PartitionDedupers, header, route
from rtml.testing import example_project, memory_event_log

CLOCK = "2019-10-20T00:00:00Z"  # after the generator's streams (from 2019-10-01, ~14 days)
N_EVENTS = 5000
SEED = 11
runner = CliRunner(env={"COLUMNS": "200"})


class Lines(logging.Handler):
    """Collects the service's JSON log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["event"] == name]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("test.rtml.validator")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield handler
    logger.removeHandler(handler)


def make_project(tmp_path: Path, event_log: str, **settings: str) -> Project:
    root = example_project(tmp_path / "shop", event_log=event_log).root
    environ = {"RTML_EVENT_LOG__TYPE": event_log, "RTML_VALIDATOR__CLOCK": CLOCK}
    environ.update({f"RTML_VALIDATOR__{k.upper()}": v for k, v in settings.items()})
    return Project.load(root, environ=environ)


class Setup:
    """A project, its log (memory: one shared instance) and its dead-letter table."""

    def __init__(self, tmp_path: Path, event_log: str, **settings: str) -> None:
        self.project = make_project(tmp_path, event_log, **settings)
        self.log: EventLog = memory_event_log() if event_log == "memory" else self.project.event_log()
        self.sink: DeadLetterSink = open_dead_letter_sink(
            self.project.config.dead_letter,
            project=self.project.config.project,
            data_dir=self.project.data_dir,
        )
        self.raw_topic = self.project.topic(RAW_EVENTS)

    def produce(self, raw_lines: Sequence[bytes]) -> None:
        self.log.produce(self.raw_topic, [to_log_record(line) for line in raw_lines])
        self.log.flush()

    def service(self, logger: logging.Logger | None = None, **kwargs: Any) -> ValidatorService:
        return ValidatorService(self.project, log=self.log, sink=self.sink, logger=logger, **kwargs)

    def records(self, topic_name: str) -> list[LogRecord]:
        return [r for batch in read_topic(self.log, self.project.topic(topic_name)) for r in batch]

    def close(self) -> None:
        self.sink.close()
        self.log.close()


@pytest.fixture(params=["memory", "local"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path, request.param, batch_size="700", poll_timeout="50ms")
    yield s
    s.close()


def quiet() -> logging.Logger:
    logger = logging.getLogger("test.rtml.validator.quiet")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    return logger


def test_counts_match_the_generator_exactly(setup: Setup) -> None:
    generation = generate(N_EVENTS, seed=SEED, dirty_rate=0.05)
    summary = generation.summary
    assert summary.duplicates > 0 and summary.invalid > 0
    setup.produce(generation.lines)

    stats = setup.service(quiet()).run(until_idle=True)

    assert (stats.valid, stats.invalid, stats.duplicates) == (
        summary.valid,
        summary.invalid,
        summary.duplicates,
    )
    assert stats.stopped_by == "idle"
    result = audit(setup.project, log=setup.log, sink=setup.sink)
    assert (result.valid, result.invalid, result.duplicates) == (
        summary.valid,
        summary.invalid,
        summary.duplicates,
    )
    assert result.total == summary.produced == N_EVENTS
    assert result.repeated_valid_ids == []
    assert result.valid_and_invalid_ids == []
    assert counts(setup.project, log=setup.log, sink=setup.sink)["total"] == N_EVENTS
    # the generator's dirty kinds, by the validator's codes
    kinds = summary.kinds
    assert result.invalid_by_code.get("not_json") == kinds["broken_json"]
    assert result.invalid_by_code.get("future_timestamp") == kinds["future_timestamp"]
    assert result.invalid_by_code.get("not_in_enum") == kinds["unknown_event_type"]


def test_dead_letters_keep_the_original_bytes_and_position(setup: Setup) -> None:
    generation = generate(N_EVENTS, seed=SEED, dirty_rate=0.05)
    setup.produce(generation.lines)
    setup.service(quiet()).run(until_idle=True)

    raw = {(r.partition, r.offset): r for r in setup.records(RAW_EVENTS)}
    letters = setup.sink.recent(limit=10_000)
    assert len(letters) == generation.summary.invalid
    for letter in letters:
        source = raw[(letter.partition, letter.offset)]
        assert letter.topic == setup.raw_topic
        assert letter.raw == source.value
        assert letter.key == source.key
        assert letter.code and letter.message
        assert letter.received_ms > 0
    assert sum(1 for letter in letters if letter.event_id is not None) > len(letters) // 2


def test_valid_records_carry_key_event_time_and_headers(setup: Setup) -> None:
    generation = generate(500, seed=SEED, dirty_rate=0.0)
    setup.produce(generation.lines)
    setup.service(quiet()).run(until_idle=True)

    raw = {json.loads(r.value)["event_id"]: r for r in setup.records(RAW_EVENTS)}
    valid = setup.records(VALID_EVENTS)
    assert len(valid) == 500
    for record in valid:
        event = json.loads(record.value)
        source = raw[event["event_id"]]
        assert header(record, EVENT_ID_HEADER) == event["event_id"].encode()
        assert record.key == source.key
        assert record.timestamp_ms == source.timestamp_ms  # the event time
        assert header(record, "source") == b"ecommerce"  # raw headers pass through
        assert event["event_time"].endswith("Z")


def test_duplicates_are_recorded_with_their_source_position(setup: Setup) -> None:
    line = generate(20, seed=SEED, dirty_rate=0.0).lines[3]
    setup.produce([line, line, line])
    stats = setup.service(quiet()).run(until_idle=True)
    assert (stats.valid, stats.duplicates) == (1, 2)
    dups = setup.records(DUPLICATE_EVENTS)
    event_id = json.loads(line)["event_id"].encode()
    assert [r.value for r in dups] == [event_id, event_id]
    assert sorted(int(header(r, "rtml.source.offset") or b"-1") for r in dups) == [1, 2]


def test_running_again_adds_nothing(setup: Setup) -> None:
    generation = generate(N_EVENTS, seed=SEED, dirty_rate=0.05)
    setup.produce(generation.lines)
    setup.service(quiet()).run(until_idle=True)
    before = counts(setup.project, log=setup.log, sink=setup.sink)

    again = setup.service(quiet()).run(until_idle=True)

    assert again.events == 0
    assert counts(setup.project, log=setup.log, sink=setup.sink) == before


def test_a_restart_drops_duplicates_of_events_accepted_before_it(setup: Setup) -> None:
    generation = generate(N_EVENTS, seed=SEED, dirty_rate=0.05)
    half = len(generation.lines) // 2
    setup.produce(generation.lines[:half])
    first = setup.service(quiet()).run(until_idle=True)
    setup.produce(generation.lines[half:])

    second = setup.service(quiet()).run(until_idle=True)

    assert second.rebuilt_records == first.valid
    summary = generation.summary
    result = audit(setup.project, log=setup.log, sink=setup.sink)
    assert (result.valid, result.invalid, result.duplicates) == (
        summary.valid,
        summary.invalid,
        summary.duplicates,
    )
    assert result.repeated_valid_ids == []


class FailingLog:
    """The event log, but its ``produce_and_commit`` fails after ``ok`` calls -- a crash
    just before the hand-over (letters to the table are written by then)."""

    def __init__(self, log: EventLog, ok: int) -> None:
        self._log = log
        self._ok = ok

    def produce_and_commit(self, outputs: Any, consumer: LogConsumer) -> None:
        if self._ok <= 0:
            raise RtmlError("injected failure before the hand-over")
        self._ok -= 1
        self._log.produce_and_commit(outputs, consumer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def test_a_failed_hand_over_stops_the_service_and_a_restart_loses_nothing(setup: Setup) -> None:
    generation = generate(N_EVENTS, seed=SEED, dirty_rate=0.05)
    setup.produce(generation.lines)
    for ok in (2, 1, 3):
        failing = ValidatorService(
            setup.project, log=FailingLog(setup.log, ok), sink=setup.sink, logger=quiet()
        )  # type: ignore[arg-type]
        with pytest.raises(RtmlError, match="injected"):
            failing.run(until_idle=True)

    setup.service(quiet()).run(until_idle=True)

    summary = generation.summary
    result = audit(setup.project, log=setup.log, sink=setup.sink)
    assert (result.valid, result.invalid, result.duplicates) == (
        summary.valid,
        summary.invalid,
        summary.duplicates,
    )
    assert result.repeated_valid_ids == [] and result.valid_and_invalid_ids == []


def test_stop_finishes_the_batch_in_hand(setup: Setup) -> None:
    generation = generate(N_EVENTS, seed=SEED, dirty_rate=0.05)
    setup.produce(generation.lines)
    stop = threading.Event()
    stop.set()
    stats = setup.service(quiet()).run(stop=stop)
    assert stats.events == 0 and stats.stopped_by == "stop"
    setup.service(quiet()).run(until_idle=True)
    assert counts(setup.project, log=setup.log, sink=setup.sink)["total"] == N_EVENTS


def test_metrics_and_log_lines(setup: Setup, lines: Lines) -> None:
    generation = generate(N_EVENTS, seed=SEED, dirty_rate=0.05)
    setup.produce(generation.lines)
    service = setup.service(logging.getLogger("test.rtml.validator"))
    stats = service.run(until_idle=True)

    text = generate_latest(service.metrics.registry).decode()
    assert f'rtml_validator_events_total{{outcome="valid"}} {float(stats.valid)}' in text
    assert f'rtml_validator_events_total{{outcome="duplicate"}} {float(stats.duplicates)}' in text
    assert (
        f'rtml_validator_invalid_events_total{{code="not_json"}} {float(stats.invalid_by_code["not_json"])}'
        in text
    )
    assert f"rtml_validator_batch_seconds_count {float(stats.batches)}" in text
    batches = lines.events("batch")
    assert len(batches) == stats.batches
    assert sum(b["valid"] + b["invalid"] + b["duplicates"] for b in batches) == N_EVENTS
    assert lines.events("dedupe_rebuilt") and lines.events("validator_stopped")


# -- alerting --------------------------------------------------------------------------


class Hook:
    """A tiny webhook receiver on 127.0.0.1."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def junk_burst() -> list[bytes]:
    good = generate(400, seed=SEED, dirty_rate=0.0).lines
    junk = [b"\xff\xfe garbage %d" % i for i in range(300)]
    return good[:200] + junk + good[200:]


def test_alert_fires_on_a_burst_of_junk_and_posts_the_webhook(tmp_path: Path, lines: Lines) -> None:
    hook = Hook()
    s = Setup(
        tmp_path,
        "local",
        batch_size="100",
        poll_timeout="50ms",
        alert__min_events="100",
        alert__invalid_rate="0.3",
        alert__webhook_url=hook.url,
    )
    try:
        s.produce(junk_burst())
        service = s.service(logging.getLogger("test.rtml.validator"))
        stats = service.run(until_idle=True)
    finally:
        s.close()
        hook.close()
    assert stats.invalid == 300 and stats.alerts == 1
    assert [line["state"] for line in lines.events("alert_firing")] == ["firing"]
    assert len(hook.bodies) == 1
    body = hook.bodies[0]
    assert body["state"] == "firing" and body["threshold"] == 0.3
    assert body["top_codes"] == {"not_utf8": body["invalid"]}
    assert body["project"] == "ecommerce"
    assert "rtml_validator_alerts_total 1.0" in generate_latest(service.metrics.registry).decode()


def test_a_failing_webhook_is_logged_and_the_loop_goes_on(tmp_path: Path, lines: Lines) -> None:
    hook = Hook()
    dead_url = hook.url
    hook.close()  # nothing listens there any more
    s = Setup(
        tmp_path,
        "memory",
        batch_size="100",
        poll_timeout="50ms",
        alert__min_events="100",
        alert__webhook_url=dead_url,
        alert__webhook_timeout="500ms",
    )
    try:
        s.produce(junk_burst())
        stats = s.service(logging.getLogger("test.rtml.validator")).run(until_idle=True)
    finally:
        s.close()
    assert stats.events == 700 and stats.alerts == 1
    assert lines.events("alert_webhook_failed")


def test_the_window_fires_once_and_resolves() -> None:
    now = [0.0]
    window = InvalidRateWindow(
        ValidatorAlertSettings(invalid_rate=0.5, window="10s", min_events=10), clock=lambda: now[0]
    )
    assert window.observe(5, {"not_json": 5}) is None  # under min_events
    change = window.observe(5, {"not_json": 5})
    assert change is not None and change.state == "firing" and change.events == 10
    assert window.observe(10, {"not_json": 10}) is None  # still firing: no new alert
    now[0] = 11.0  # the junk leaves the window
    change = window.observe(10, {})
    assert change is not None and change.state == "resolved" and change.invalid_rate == 0.0


# -- the CLI ---------------------------------------------------------------------------


def test_rtml_validate_file_mode(tmp_path: Path) -> None:
    project = make_project(tmp_path, "local")
    generation = generate(2000, seed=SEED, dirty_rate=0.05)
    source = tmp_path / "in.jsonl"
    lines_in = [*generation.lines, b"\xff\xfenot utf-8"]
    source.write_bytes(b"\n".join(lines_in) + b"\n\n")
    valid, invalid = tmp_path / "valid.jsonl", tmp_path / "invalid.jsonl"

    result = runner.invoke(
        app,
        [
            "validate",
            "--in",
            str(source),
            "--valid",
            str(valid),
            "--invalid",
            str(invalid),
            "--project",
            str(project.root),
        ],
        env={"RTML_VALIDATOR__CLOCK": CLOCK, "COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    summary = generation.summary
    valid_lines = valid.read_bytes().splitlines()
    invalid_lines = [json.loads(line) for line in invalid.read_text().splitlines()]
    assert len(valid_lines) == summary.valid
    assert len(invalid_lines) == summary.invalid + 1
    assert len({json.loads(line)["event_id"] for line in valid_lines}) == summary.valid
    for entry in invalid_lines:
        original = lines_in[entry["line"] - 1]
        raw = base64.b64decode(entry["raw"]) if entry["raw_encoding"] == "base64" else entry["raw"].encode()
        assert raw == original
        assert entry["code"] and entry["message"] and "field" in entry
    assert invalid_lines[-1]["raw_encoding"] == "base64" and invalid_lines[-1]["code"] == "not_utf8"
    assert "duplicates dropped" in result.output and str(summary.duplicates) in result.output


def test_rtml_run_validator_until_idle(tmp_path: Path) -> None:
    project = make_project(tmp_path, "local")
    generation = generate(N_EVENTS, seed=SEED, dirty_rate=0.05)
    log = project.event_log()
    try:
        log.produce(project.topic(RAW_EVENTS), [to_log_record(line) for line in generation.lines])
    finally:
        log.close()

    result = runner.invoke(
        app,
        ["run", "validator", "--until-idle", "--project", str(project.root), "--group", "cli-test"],
        env={"RTML_VALIDATOR__CLOCK": CLOCK, "COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    assert "top invalid reasons" in result.output and "not_json" in result.output
    assert f"{generation.summary.valid:,}" in result.output
    assert counts(project)["total"] == N_EVENTS


def test_dedupe_is_per_partition_so_a_partition_ahead_in_time_forgets_nothing() -> None:
    day_ms = 86_400_000
    dedupers = PartitionDedupers(lambda: Deduper(horizon="1h"))
    records = [
        LogRecord(value=b"a", key=b"1", topic="raw", partition=0, offset=0),
        LogRecord(value=b"x", key=b"2", topic="raw", partition=1, offset=0),
        LogRecord(value=b"x", key=b"2", topic="raw", partition=1, offset=1),
    ]
    outcomes = [Valid("a", 10 * day_ms, b"{}"), Valid("x", day_ms, b"{}"), Valid("x", day_ms, b"{}")]
    batch = route(records, outcomes, dedupers, received_ms=1, id_field="event_id")
    assert [header(r, EVENT_ID_HEADER) for r in batch.valid] == [b"a", b"x"]
    assert [r.value for r in batch.duplicates] == [b"x"]
    assert header(batch.valid[1], "rtml.source.partition") == b"1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_stops_gracefully_and_metrics_are_served(tmp_path: Path) -> None:
    project = make_project(tmp_path, "local")
    generation = generate(N_EVENTS, seed=SEED, dirty_rate=0.05)
    log = project.event_log()
    try:
        log.produce(project.topic(RAW_EVENTS), [to_log_record(line) for line in generation.lines])
    finally:
        log.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTML_")}
    env["RTML_VALIDATOR__CLOCK"] = CLOCK
    command = [sys.executable, "-m", "rtml.cli.main", "run", "validator", "--project", str(project.root)]
    proc = subprocess.Popen(
        [*command, "--metrics-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:  # until the first batch shows in the metrics
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
            except httpx.HTTPError:
                text = ""
            if 'events_total{outcome="valid"}' in text and 'events_total{outcome="valid"} 0.0' not in text:
                break
            time.sleep(0.05)
        assert "rtml_validator_events_total" in text and "rtml_validator_batch_seconds_bucket" in text
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    stopped = [json.loads(x) for x in err.decode().splitlines() if '"validator_stopped"' in x]
    assert stopped and stopped[0]["stopped_by"] == "stop"
    assert b"top invalid reasons" in out
    assert counts(project)["total"] == stopped[0]["events"] == N_EVENTS
