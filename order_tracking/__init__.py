"""Order Tracking data quality & vacuum: the domain core shared by the DAGs, the CLI and GX."""

__version__ = "0.1.0"
