"""The helpers of ``scripts/airflow_rehearsal.py``: deployment, processes, reads and checks."""
