"""Delivery: the ledger of who gets an edition, and the engine that sends it, crash-safe.

Read in this order:

- ``models``: ``Delivery``, one row per (edition, subscriber), and its states.
- ``ledger``: writing the rows of an edition, resumable, in bulk.
- ``claims``: taking a batch of rows under a lease (``BEGIN IMMEDIATE`` / ``SKIP LOCKED``),
  the claim-time re-check, expired leases, and the fenced writes of a held row.
- ``flow``: the shared rate limiter and the retry backoff.
- ``sender``: ``DeliveryEngine``, threads that claim, build, send and record.
- ``prepare``: from a week to an edition with a complete ledger; message factories; the dry
  run and the test copy.
- ``admin``: status, resend, cancel.
- ``bulk``: the DB-API ``executemany`` used by the two hot statements.
"""
