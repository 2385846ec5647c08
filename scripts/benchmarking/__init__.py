"""The helpers of ``scripts/benchmark.py``, one module per job (its docstring says what is measured)."""
