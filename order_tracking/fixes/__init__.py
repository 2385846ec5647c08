"""Fixes a person decides on: repair of reactivated orders (``repair-reactivated``)."""
