"""The morning alert: what it says (``content``), sending it (``mailer``, ``run_alert``) and the
Airflow notifier of a failed DAG run (``notifier``)."""
