"""Dead letters in OpenSearch (1.x+) or Elasticsearch (7.8+), over plain HTTP (httpx).

- One index per UTC day of the time received: ``<index_prefix>-YYYY.MM.DD``.
- On open, rtml creates the index template ``<index_prefix>`` for ``<index_prefix>-*``
  if it is missing (an existing one, e.g. tuned by an operator, is left alone): strict
  mapping, ``code``/``field_path``/``event_id``/``topic`` keyword, ``message`` text (with
  a ``message.keyword`` sub-field), ``received`` date, ``partition``/``offset`` numbers,
  ``raw``/``key`` base64 ``binary`` (stored, not indexed).
- ``write`` sends ``_bulk`` ``create`` actions with ``_id = <topic>-<partition>-<offset>``:
  a letter written again is refused by the index with a version conflict, which is
  success here -- the first copy wins, as on every sink. The reply's per-item errors
  raise :class:`~rtml.errors.RtmlError` naming the letter and the reason. A bulk request
  that returns is durable (translog); ``flush`` refreshes so the counts see it.
- Every request is bounded by ``timeout_s``; an unreachable server raises
  :class:`~rtml.errors.BackendUnavailableError`.

Idempotence holds within a daily index: a letter re-processed with a ``received_ms`` on
another UTC day lands in that day's index too (see docs/dead-letters.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from rtml.backends.dead_letter.base import DeadLetter, first_per_position, ranked
from rtml.backends.dead_letter.config import DEFAULT_PROJECT, OpenSearchDeadLetterConfig, index_prefix
from rtml.errors import BackendUnavailableError, RtmlError

MAX_BULK_BYTES = 8 * 1024 * 1024  # per _bulk request (servers accept 100 MB by default)
MAX_CODES = 10_000  # terms buckets of counts_by_code
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BULK_REPLY = "errors,items.*._id,items.*.status,items.*.error"
_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "code": {"type": "keyword"},
        "message": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
        "field_path": {"type": "keyword"},
        "event_id": {"type": "keyword"},
        "topic": {"type": "keyword"},
        "partition": {"type": "integer"},
        "offset": {"type": "long"},
        "received": {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
        "raw": {"type": "binary"},
        "key": {"type": "binary"},
    },
}


class OpenSearchDeadLetterSink:
    """Daily dead-letter indices on a search server."""

    transactional: ClassVar[bool] = False

    def __init__(self, config: OpenSearchDeadLetterConfig | None = None) -> None:
        self._config = config or OpenSearchDeadLetterConfig()
        self._url = self._config.url
        self._prefix = self._config.index_prefix or index_prefix(DEFAULT_PROJECT)
        self._pattern = f"{self._prefix}-*"
        password = self._config.password.get_secret_value() if self._config.password else ""
        auth = (self._config.username, password) if self._config.username else None
        timeout = self._config.timeout_s
        self._http = httpx.Client(
            base_url=self._url,
            auth=auth,
            verify=self._config.verify_tls,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Accept": "application/json"},
        )
        try:
            self._ensure_template()
        except BaseException:
            self._http.close()
            raise

    @property
    def index_prefix(self) -> str:
        return self._prefix

    def index_for(self, received_ms: int) -> str:
        """The daily index of a letter received at ``received_ms``."""
        return f"{self._prefix}-{_utc(received_ms):%Y.%m.%d}"

    def write(self, letters: Sequence[DeadLetter]) -> None:
        """Index ``letters`` with ``_bulk`` (several requests for a big batch)."""
        for chunk in self._chunks(first_per_position(letters)):
            reply = self._request(
                "POST",
                "/_bulk",
                params={"filter_path": _BULK_REPLY},
                content=b"".join(body for _, body in chunk),
                headers={"Content-Type": "application/x-ndjson"},
            )
            if reply.get("errors"):
                self._raise_item_errors(reply.get("items", []), [letter for letter, _ in chunk])

    def flush(self) -> None:
        """Refresh the dead-letter indices: what was written becomes searchable."""
        self._request("POST", f"/{self._pattern}/_refresh", params={"allow_no_indices": "true"})

    def count(self) -> int:
        reply = self._request("GET", f"/{self._pattern}/_count", params={"allow_no_indices": "true"})
        return int(reply.get("count", 0))

    def counts_by_code(self) -> dict[str, int]:
        query = {"size": 0, "aggs": {"codes": {"terms": {"field": "code", "size": MAX_CODES}}}}
        reply = self._search(query)
        buckets = reply.get("aggregations", {}).get("codes", {}).get("buckets", [])
        return ranked({str(b["key"]): int(b["doc_count"]) for b in buckets})

    def recent(self, limit: int = 20) -> list[DeadLetter]:
        if limit <= 0:
            return []
        order = [{name: {"order": "desc"}} for name in ("received", "topic", "partition", "offset")]
        reply = self._search({"size": limit, "sort": order})
        hits = reply.get("hits", {}).get("hits", [])
        return [_from_source(hit["_source"]) for hit in reversed(hits)]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenSearchDeadLetterSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------------

    def _ensure_template(self) -> None:
        name = f"/_index_template/{self._prefix}"
        if self._request("HEAD", name, missing_ok=True) is not None:
            return
        template = {
            "index_patterns": [self._pattern],
            # A longer prefix is more specific: it wins over a shorter overlapping one.
            "priority": 100 + len(self._prefix),
            "template": {"settings": {"number_of_shards": 1}, "mappings": _MAPPING},
            "_meta": {"created_by": "rtml", "schema_version": 1},
        }
        self._request("PUT", name, json=template)

    def _chunks(self, letters: list[DeadLetter]) -> Iterator[list[tuple[DeadLetter, bytes]]]:
        chunk: list[tuple[DeadLetter, bytes]] = []
        size = 0
        for letter in letters:
            action = {"create": {"_index": self.index_for(letter.received_ms), "_id": letter.document_id}}
            body = (json.dumps(action) + "\n" + json.dumps(_to_source(letter)) + "\n").encode()
            if chunk and (len(chunk) >= self._config.batch_size or size + len(body) > MAX_BULK_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append((letter, body))
            size += len(body)
        if chunk:
            yield chunk

    def _raise_item_errors(self, items: list[dict[str, Any]], letters: list[DeadLetter]) -> None:
        refused: list[str] = []
        overloaded = False
        for item, letter in zip(items, letters, strict=False):
            result: dict[str, Any] = next(iter(item.values()), {})
            status = int(result.get("status", 200))
            if status < 300 or status == 409:  # 409: already stored, the first copy wins
                continue
            error = result.get("error") or {}
            overloaded = overloaded or status == 429
            refused.append(
                f"{letter.document_id} -> {self.index_for(letter.received_ms)}: "
                f"{error.get('type', status)}: {error.get('reason', '')}"
            )
        if not refused:
            return
        what = f"{self._url} refused {len(refused)} of {len(letters)} dead letters (first: {refused[0]})"
        if overloaded:
            raise BackendUnavailableError(f"{what}. The server is overloaded: retry later")
        raise RtmlError(
            f"{what}. Fix: check the index template {self._prefix!r} (mapping) and the "
            "server's disk and index limits"
        )

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        params = {"allow_no_indices": "true", "ignore_unavailable": "true"}
        return self._request("POST", f"/{self._pattern}/_search", params=params, json=body) or {}

    def _request(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The decoded JSON reply (``{}`` for HEAD); ``None`` for a 404 if ``missing_ok``."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            limit = self._config.timeout_s
            raise self._unavailable(f"{method} {path} timed out after {limit:.0f} s") from exc
        except httpx.TransportError as exc:
            raise self._unavailable(f"{method} {path}: {exc}") from exc
        status = response.status_code
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            raise self._http_error(method, path, response)
        if method == "HEAD" or not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise RtmlError(
                f"{self._url}{path} did not answer JSON ({response.text[:200]!r}). Fix: check "
                "that dead_letter.url points at OpenSearch or Elasticsearch"
            ) from exc

    def _http_error(self, method: str, path: str, response: httpx.Response) -> RtmlError:
        status = response.status_code
        try:
            error = response.json().get("error", response.text)
        except ValueError:
            error = response.text
        reason = f"{error.get('type')}: {error.get('reason')}" if isinstance(error, dict) else str(error)
        what = f"{method} {self._url}{path} answered {status} ({reason[:300]})"
        if status in (401, 403):
            return RtmlError(f"{what}. Fix: set dead_letter.username and dead_letter.password")
        if status in (429, 502, 503, 504):
            return self._unavailable(what)
        return RtmlError(what)

    def _unavailable(self, what: str) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"the search server at {self._url} is not reachable: {what}. Fix: start it "
            "(bash scripts/services.sh start search), or fix dead_letter.url in rtml.yaml"
        )


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _to_source(letter: DeadLetter) -> dict[str, Any]:
    received = _utc(letter.received_ms)
    return {
        "code": letter.code,
        "message": letter.message,
        "field_path": letter.field_path,
        "event_id": letter.event_id,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "received": f"{received:%Y-%m-%dT%H:%M:%S}.{letter.received_ms % 1000:03d}Z",
        "raw": base64.b64encode(letter.raw).decode("ascii"),
        "key": None if letter.key is None else base64.b64encode(letter.key).decode("ascii"),
    }


def _from_source(source: dict[str, Any]) -> DeadLetter:
    received = source["received"]
    if isinstance(received, str):
        stamp = datetime.fromisoformat(received.replace("Z", "+00:00"))
        received_ms = (stamp - _EPOCH) // timedelta(milliseconds=1)
    else:
        received_ms = int(received)
    key = source.get("key")
    return DeadLetter(
        raw=base64.b64decode(source.get("raw") or ""),
        key=None if key is None else base64.b64decode(key),
        code=str(source.get("code") or "unknown"),
        message=str(source.get("message") or ""),
        field_path=source.get("field_path"),
        event_id=source.get("event_id"),
        topic=str(source.get("topic") or "?"),
        partition=int(source.get("partition", 0)),
        offset=int(source.get("offset", 0)),
        received_ms=received_ms,
    )
