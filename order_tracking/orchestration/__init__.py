"""What the two DAGs' tasks run. The DAG files import from here while parsing, so every module
is light at import time (Airflow and the provider's operator module only; neither imports GX):
GX, the rules and the maintenance engine are imported inside the task bodies.

- ``connections``: settings from the Airflow connections, else the environment;
- ``run_context``: the checked window's end (``as_of``) and the GX run name of a DAG run;
- ``operator``: the four DQ checks through the GX provider's checkpoint operator;
- ``gate``: ``check_unresolved_exceptions``, the final gate of the monitoring DAG;
- ``vacuum_task``: the vacuum DAG's steps and its pool guard;
- ``failures``: which errors retrying cannot fix.

Three kinds of failure, three behaviours:
- a finding (a failed expectation, the extraction alarm, unresolved exceptions) raises
  ``AirflowFailException``: the task fails at once, no retry;
- a configuration error (bad URL, unknown driver, missing table, wrong password, bad ``as_of``)
  also raises ``AirflowFailException``: retrying cannot fix it, and the alert should not wait;
- anything else (connection refused, a timeout) raises an ordinary exception: Airflow retries.
"""
