"""Delivery: the ledger of who gets an edition, and the engine that sends it, crash-safe.

Read in this order:

- ``run``: the one use case — ``run_edition`` (``digest send``, the weekly job) and
  ``run_worker`` (``digest worker``, the scheduler's continuing check), with a typed report.
- ``models``: ``Delivery``, one row per (edition, subscriber).
- ``ledger``: every transition of a row, drawn in its docstring — claims under a lease
  (``BEGIN IMMEDIATE`` / ``SKIP LOCKED``) with the guards and the claim-time re-check, leases
  of dead holders, in flight, outcomes, deferred rows, release, resend, cancel, provider
  status; the only code that updates the ``delivery`` table.
- ``guards``: the pause switch and the send window, asked by every claim.
- ``build``: writing the rows of an edition, resumable, in bulk.
- ``flow``: the shared rate limiter (calls paced, AIMD in time) and the retry backoff.
- ``sender``: ``DeliveryEngine``, threads that claim, build, send and record.
- ``prepare``: from a week to an edition with a complete ledger; message factories; the dry
  run and the test copy.
- ``status``: where a send stands, for ``digest status``.
- ``bulk``: the DB-API ``executemany`` used by the two hot statements.
"""
