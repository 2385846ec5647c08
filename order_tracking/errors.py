"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unusable environment: the message names the thing at fault.

    ``exit_code`` lets a command pick its documented code (``monitor`` uses 2 for the
    extraction alarm); everything else exits 3.
    """

    def __init__(self, message: str, exit_code: int = 3) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StoreUnavailable(UserError):
    """The shared GX store (ORDER_TRACKING_GX_STORE_URL) cannot be used: missing bucket,
    unreachable endpoint, no credentials or no permission. The message names it."""
