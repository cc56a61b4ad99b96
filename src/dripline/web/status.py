"""Which HTTP status answers which dripline return code (the gateway's one mapping table).

The table is the reference gateway's (dripline-python 5.1, reference §6.7) with two corrections
that keep every answer a valid HTTP response:

* warnings (codes 1-99) are successes with a remark, answered 200: the reference sends them as
  1xx statuses (100, 110, 112, 199), which HTTP reserves for interim responses, so a client
  waits for a final response that never comes;
* a code the table does not name (999 unhandled exception, a plugin's own codes) is rated by its
  hundred, as dripline groups codes (1xx broker, 2xx resource, 3xx service, 4xx client), instead
  of the reference's 400 for a get and 201 "Created" for a failed set or cmd.

The exact dripline code always travels in the ``dl_return_code`` header, so a client never has to
reverse this table.
"""
from __future__ import annotations

__all__ = ["http_status", "REFERENCE_STATUS"]

#: dripline return code -> HTTP status, as the reference gateway maps them (warnings excepted)
REFERENCE_STATUS: dict[int, int] = {
    0: 200,
    100: 500, 101: 500, 102: 404,
    200: 500, 201: 503, 202: 503, 203: 503,
    300: 400, 301: 400, 302: 400, 303: 422, 304: 422, 305: 503, 306: 501, 307: 403, 308: 423,
    310: 422,
    400: 500, 401: 400, 402: 500, 403: 503, 404: 504,
}

_BY_HUNDRED = {0: 200, 1: 500, 2: 503, 3: 400, 4: 500}


def http_status(return_code: int) -> int:
    """The HTTP status for a dripline return code (see the module documentation)."""
    status = REFERENCE_STATUS.get(return_code)
    if status is not None:
        return status
    if 0 < return_code < 100:
        return 200
    return _BY_HUNDRED.get(return_code // 100, 500)
