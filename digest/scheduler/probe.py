"""``python -m digest.scheduler.probe``: a health check for the scheduler's container or unit.

Prints ``scheduler_status`` as JSON and exits 0 when a scheduler's heartbeat is fresh (written
within three heartbeat intervals), 1 otherwise. It asks the database, not the process: with
several schedulers on PostgreSQL, "healthy" means "some scheduler leads", which is what
matters. Reads the same ``DIGEST_*`` settings as the service.
"""

from __future__ import annotations

import sys

import orjson

from digest.config import get_settings
from digest.db import engine_from_settings, require_schema
from digest.errors import DigestError
from digest.scheduler.heartbeat import scheduler_status


def main() -> int:
    engine = engine_from_settings(get_settings())
    try:
        require_schema(engine)  # creates nothing: a probe pointed at a wrong path says so
        status = scheduler_status(engine)
    except DigestError as exc:
        sys.stderr.write(f"scheduler probe: {exc}\n")
        return 1
    except Exception as exc:
        sys.stderr.write(f"scheduler probe: database unavailable: {type(exc).__name__}\n")
        return 1
    finally:
        engine.dispose()
    sys.stdout.write(orjson.dumps(status).decode() + "\n")
    return 0 if status["alive"] else 1


if __name__ == "__main__":
    sys.exit(main())
