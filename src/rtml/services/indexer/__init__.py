"""``rtml run indexer``: the dead-letter topic, copied into daily search indices."""

from rtml.services.indexer.service import DeadLetterIndexer, IndexerStats

__all__ = ["DeadLetterIndexer", "IndexerStats"]
