"""``[core] hostname_callable`` of the rehearsal's Celery workers: two "machines" on one host.

A task instance records the hostname of the worker that ran it; both workers here share one
machine, so each is given its own name (``REHEARSAL_WORKER_HOSTNAME``) to tell them apart.
"""

from __future__ import annotations

import os


def hostname() -> str:
    """This worker's name, as its task instances record it."""
    return os.environ["REHEARSAL_WORKER_HOSTNAME"]
