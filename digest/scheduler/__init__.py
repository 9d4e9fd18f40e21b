"""The weekly scheduler: fires the weekly job on a crontab schedule, one leader at a time.

- ``job``: the weekly job itself (import, pick the week, open the edition, hold for the guards,
  send), callable directly (``digest scheduler --once``) or by the scheduler.
- ``service``: the long-lived APScheduler service (job store in the database, coalescing,
  misfire grace, signals, heartbeat).
- ``guards``: the send window and the pause switch.
- ``leader``: exactly one scheduler fires per database, one weekly job runs at a time.
- ``heartbeat``: liveness and ``scheduler_status`` for ``digest status`` and ``/healthz``;
  ``probe`` turns it into a container or unit health check.
- ``cron``: the crontab schedule parsed into a trigger.
- ``logs``: the one-line ``event=... key=value`` format every step logs in.
"""
