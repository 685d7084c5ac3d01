"""Input checks at the edge: JSON bodies, body fields, query parameters, path ids.

Everything a client sends is checked here before it reaches the store, so no input can
reach the database in a form it rejects (a too-large integer, a lone surrogate, a string
longer than its column). Failures are ``ApiError``s: malformed JSON and bad query
parameters are 400 ``bad_request``; well-formed bodies with a missing or mistyped field
are 422 ``invalid``. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from jobsys.clock import parse_iso
from jobsys.web.errors import ApiError, bad_request, invalid, not_found

#: Largest request body accepted (JSON params of a job included).
MAX_BODY_BYTES = 1024 * 1024
#: Ids are signed 64-bit integers in both databases.
MAX_ID = 2**63 - 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}``."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
        # Lone surrogates ("\\ud800") parse but cannot be stored; find them now.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise bad_request(f"the request body is not valid JSON: {reason}") from None
    if not isinstance(value, dict):
        raise bad_request(f"the request body must be a JSON object, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class Body:
    """Typed access to the fields of a JSON object body; unknown fields are refused."""

    def __init__(self, data: Mapping[str, Any], allowed: Collection[str]) -> None:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise invalid(
                f"unknown field(s): {', '.join(unknown)}"
                + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else " (none allowed)")
            )
        self.data = data

    def _get(self, name: str, required: bool, what: str) -> Any:
        """The field's value; None when it is absent. An explicit null is refused: it is
        not a value of the field's type, and reading it as "the default" would hide a
        client's mistake (``{"params": null}`` is not ``{"params": {}}``)."""
        if name not in self.data:
            if required:
                raise invalid(f"field {name!r} is required")
            return None
        value = self.data[name]
        if value is None:
            raise invalid(f"field {name!r} must be {what}, not null")
        return value

    def boolean(self, name: str, *, default: bool | None = None) -> bool:
        value = self._get(name, default is None, "true or false")
        if value is None:
            assert default is not None
            return default
        if not isinstance(value, bool):
            raise invalid(f"field {name!r} must be true or false, not {_kind(value)}")
        return value

    def string(self, name: str, *, max_length: int = 200, required: bool = True) -> str | None:
        value = self._get(name, required, "a string")
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(f"field {name!r} must be a string, not {_kind(value)}")
        if len(value) > max_length:
            raise invalid(f"field {name!r} is longer than {max_length} characters")
        return value

    def required_string(self, name: str, *, max_length: int = 200) -> str:
        value = self.string(name, max_length=max_length, required=True)
        assert value is not None
        return value

    def integer(self, name: str, *, default: int, low: int, high: int) -> int:
        value = self._get(name, False, "a whole number")
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid(f"field {name!r} must be a whole number, not {_kind(value)}")
        if not low <= value <= high:
            raise invalid(f"field {name!r} must be between {low} and {high}")
        return value

    def instant(self, name: str) -> datetime | None:
        text = self.string(name, max_length=64, required=False)
        if text is None:
            return None
        try:
            value = parse_iso(text)
        except (ValueError, OverflowError):  # e.g. year 1 with a positive UTC offset
            raise invalid(f"field {name!r} is not an ISO-8601 instant: {text!r}") from None
        if not 1970 <= value.year <= 9000:
            raise invalid(f"field {name!r} must be between the years 1970 and 9000")
        return value

    def object(self, name: str) -> dict[str, Any] | None:
        value = self._get(name, False, "a JSON object")
        if value is None:
            return None
        if not isinstance(value, dict):
            raise invalid(f"field {name!r} must be a JSON object, not {_kind(value)}")
        return value


# -- query parameters and path ids ----------------------------------------------------
def parse_id(text: str, what: str) -> int:
    """A path id; anything that cannot be an id is simply not found (404)."""
    if not text.isascii() or not text.isdigit() or len(text) > 19 or not 1 <= int(text) <= MAX_ID:
        raise not_found(f"unknown {what} {text!r}")
    return int(text)


class Query:
    """Typed access to query parameters; a bad value is a 400 naming the parameter."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self.params = params

    def _raw(self, name: str) -> str | None:
        value = self.params.get(name)
        if value is None or value == "":
            return None
        return value

    def limit(self, *, default: int = 50, high: int = 200) -> int:
        return self.integer("limit", default=default, low=1, high=high)

    def integer(self, name: str, *, default: int, low: int, high: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 19:
            raise _bad_param(name, f"must be a whole number between {low} and {high}")
        value = int(raw)
        if not low <= value <= high:
            raise _bad_param(name, f"must be between {low} and {high}")
        return value

    def cursor(self, name: str = "cursor") -> int | None:
        return self.id(name)

    def id(self, name: str) -> int | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) <= MAX_ID:
            raise _bad_param(name, "must be a positive whole number")
        return int(raw)

    def name(self, name: str) -> str | None:
        """A job, group or schedule name (letters, digits, ``_ . : -``, up to 100)."""
        raw = self._raw(name)
        if raw is None:
            return None
        if not NAME_RE.match(raw):
            raise _bad_param(name, "is not a valid name")
        return raw

    def text(self, name: str, *, max_length: int) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if len(raw) > max_length:
            raise _bad_param(name, f"is longer than {max_length} characters")
        try:
            raw.encode("utf-8")
        except UnicodeError:
            raise _bad_param(name, "is not valid text") from None
        return raw

    def instant(self, name: str) -> datetime | None:
        """An ISO-8601 instant (``Z`` or an offset; none means UTC)."""
        raw = self._raw(name)
        if raw is None:
            return None
        if len(raw) > 64:
            raise _bad_param(name, "is longer than 64 characters")
        try:
            value = parse_iso(raw)
        except (ValueError, OverflowError):
            raise _bad_param(name, f"is not an ISO-8601 instant: {raw!r}") from None
        if not 1970 <= value.year <= 9000:
            raise _bad_param(name, "must be between the years 1970 and 9000")
        return value

    def choices(self, name: str, allowed: Collection[str]) -> list[str] | None:
        """A comma-separated list of allowed values (case-insensitive), e.g. ``QUEUED,RUNNING``."""
        raw = self._raw(name)
        if raw is None:
            return None
        values = [v.strip().upper() for v in raw.split(",") if v.strip()]
        wrong = [v for v in values if v not in allowed]
        if not values or wrong:
            raise _bad_param(name, f"must be one or more of {', '.join(allowed)}")
        return sorted(set(values))


def _bad_param(name: str, why: str) -> ApiError:
    return bad_request(f"query parameter {name!r} {why}")
