"""Test-only: on PYTHONPATH of child processes started by the ``warehouse`` fixture's tests.

Registers the Redshift twin's SQLAlchemy plugin (``?plugin=redshift_twin``) lazily, by module
path, so that ``python -m order_tracking`` and anything it spawns guard and shim the twin's SQL
exactly like the test process does. Production code never sees this directory.
"""

from sqlalchemy.dialects import plugins

plugins.register("redshift_twin", "tests.redshift_twin", "TwinPlugin")
