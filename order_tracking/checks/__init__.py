"""The nightly checks: the rules' SQL, Test 0's lost rows, the run of the GX checkpoints, the
exceptions store. May import the ground floor (settings, errors, db, schema, clock) and
``expectations_custom``; never ``commands``."""
