"""Streaming ingestion: a live feed of 2013 through a message broker, exactly once into the lake, and each
completed day landed as the same file a delivery would be (docs/streaming.md)."""
