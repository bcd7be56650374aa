"""Data: streaming (image, caption, metadata) records, and Emu's curation funnel."""

from .records import Record, iter_records

__all__ = ["Record", "iter_records"]
