"""The one error tree of berth. Each class carries the HTTP status the API maps it to.

Imports nothing. Only `api` (server side) and `client` (reverse mapping) read `status`.

* BerthError (500)
  + InvalidArgument (400)
  + Unauthorized (401)
  + Forbidden (403)
  + NotFound (404)
  + Conflict (409)   also "already exists", "is running", "in use"
  + NotModified (304)
  + NotImplemented (501)
  + Unavailable (503)
  + System (500)
"""

from __future__ import annotations


class BerthError(Exception):
    status = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(BerthError):
    status = 400


class Unauthorized(BerthError):
    status = 401


class Forbidden(BerthError):
    status = 403


class NotFound(BerthError):
    status = 404


class Conflict(BerthError):
    status = 409


class NotModified(BerthError):
    status = 304


class NotImplemented_(BerthError):  # noqa: N801 - the builtin name is taken
    status = 501


class Unavailable(BerthError):
    status = 503


class System(BerthError):
    status = 500


_BY_STATUS: dict[int, type[BerthError]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        NotModified,
        NotImplemented_,
        Unavailable,
    )
}


def from_status(status: int, message: str) -> BerthError:
    """The reverse of `status`, as containerd's errdefs ToNative: for the client."""
    return _BY_STATUS.get(status, System)(message)


__all__ = [
    "BerthError",
    "InvalidArgument",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "NotModified",
    "NotImplemented_",
    "Unavailable",
    "System",
    "from_status",
]
