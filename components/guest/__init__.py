"""Guest side of vdesk: keys, addresses, SSH with pinned host keys, cloud-init status, checks."""

from __future__ import annotations


class GuestError(Exception):
    """A user-facing problem with a guest; the message is meant to be read by a person."""


class HostKeyMismatch(GuestError):
    """The guest presented a host key other than the pinned one; never retried."""


class GuestTimeout(GuestError):
    """A bounded wait on a guest expired; says what was awaited, for how long, and the last error."""

    def __init__(self, waited_for: str, timeout_s: float | None = None, last_error: object = None):
        self.waited_for = waited_for
        self.timeout_s = timeout_s
        self.last_error = last_error
        if timeout_s is None:
            message = waited_for
        else:
            message = f"timed out after {timeout_s:g} s waiting for {waited_for}"
        if last_error:
            message += f"; last error: {last_error}"
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.waited_for, self.timeout_s, self.last_error))


__all__ = ["GuestError", "HostKeyMismatch", "GuestTimeout"]
