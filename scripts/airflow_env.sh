# Source me: the environment under which the project's Airflow runs locally (demo, manual tries).
# AIRFLOW_HOME must be set before anything imports airflow (docs/design.md section 5).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.local/airflow}"
case "$AIRFLOW_HOME" in /*) ;; *) AIRFLOW_HOME="$PWD/$AIRFLOW_HOME" ;; esac  # Airflow wants absolute
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-WARNING}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
# The DAG files import order_tracking (not pip-installed): the project root goes on the path.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
