"""Editions: one per newsletter and ISO week, created idempotently, carrying a frozen snapshot
of the comparisons it sends.

- ``models``: ``Edition`` (unique ``(newsletter, week)``; ``ledger_complete``) and
  ``EditionComparison`` (the snapshot of each comparison, in edition order).
- ``service``: ``get_or_create_edition`` / ``open_edition`` (the reason when there is none),
  ``edition_documents`` (the snapshots back as ``ComparisonDoc``), lookups.
"""
