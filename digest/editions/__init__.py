"""Editions: one per newsletter and ISO week, created idempotently, carrying a frozen snapshot
of the comparisons it sends.

- ``models``: ``Edition`` (unique ``(newsletter, week)``; ``ledger_complete``) and
  ``EditionComparison`` (the snapshot of each comparison, in edition order).
- ``service``: ``get_or_create_edition`` / ``open_edition`` (the reason when there is none),
  ``edition_documents`` (the snapshots back as ``ComparisonDoc``), lookups; the caller passes
  how the subject is written (``digest.render.edition.subject_for``).
- ``selection``: the week's comparisons and which of them are new (not yet carried by a
  sending or sent edition): what an edition freezes.
- ``preview``: the editor's preview, from the edition's snapshots once it exists.
"""
