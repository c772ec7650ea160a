"""The event log role: append-only topics with per-consumer-group offsets."""

from rtml.backends.event_log.base import EventLog, LogConsumer, LogRecord

__all__ = ["EventLog", "LogConsumer", "LogRecord"]
