"""The operators and functions of :mod:`rtml.core.sqleval`, one small function each.

Arguments are never ``NULL`` here unless a function says so: the compiled closures
check for ``None`` before calling. Results follow DuckDB for numbers, strings and booleans.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rtml.errors import DefinitionError, RtmlError


class SqlEvalError(RtmlError):
    """A SQL expression could not be evaluated on a row (type mismatch, ``1 // 0``, bad cast)."""

    http_status = 400


_NUMBER = (int, float)


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise SqlEvalError(f"expected a number, got {type(value).__name__} {value!r}")
    return value


def add(a: Any, b: Any) -> Any:
    return _number(a) + _number(b)


def sub(a: Any, b: Any) -> Any:
    return _number(a) - _number(b)


def mul(a: Any, b: Any) -> Any:
    return _number(a) * _number(b)


def div(a: Any, b: Any) -> float:
    """True division; a zero divisor gives ``±inf`` or ``NaN`` as in DuckDB."""
    x, y = float(_number(a)), float(_number(b))
    if y == 0.0:
        return math.nan if x == 0.0 or math.isnan(x) else math.copysign(math.inf, x)
    return x / y


def intdiv(a: Any, b: Any) -> Any:
    """``//``: integer division truncating toward zero; on doubles, DuckDB divides."""
    x, y = _number(a), _number(b)
    if isinstance(x, float) or isinstance(y, float):
        return div(x, y)
    if y == 0:
        raise SqlEvalError("division by zero in //")
    q = abs(x) // abs(y)
    return q if (x < 0) == (y < 0) else -q


def mod(a: Any, b: Any) -> Any:
    """``%``: the remainder has the sign of the dividend (C semantics)."""
    x, y = _number(a), _number(b)
    if isinstance(x, float) or isinstance(y, float):
        return math.fmod(x, y) if y != 0 else math.nan
    if y == 0:
        raise SqlEvalError("division by zero in %")
    r = abs(x) % abs(y)
    return -r if x < 0 else r


def power(a: Any, b: Any) -> float:
    try:
        return math.pow(_number(a), _number(b))
    except OverflowError:
        return math.inf
    except ValueError:  # negative base with a fractional exponent, 0 ** -1
        return math.inf if a == 0 else math.nan


def concat(a: Any, b: Any) -> str:
    return to_varchar(a) + to_varchar(b)


def eq(a: Any, b: Any) -> bool:
    """``=``: no implicit cast between strings and numbers (write a CAST)."""
    if (type(a) is str) != (type(b) is str):
        raise SqlEvalError(f"cannot compare {a!r} with {b!r}; CAST one side")
    return bool(a == b)


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


def neg(a: Any) -> Any:
    return -_number(a)


def abs_(a: Any) -> Any:
    return abs(_number(a))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise SqlEvalError(f"expected a string, got {type(value).__name__} {value!r}")
    return value


def lower(a: Any) -> str:
    return _text(a).lower()


def upper(a: Any) -> str:
    return _text(a).upper()


def length(a: Any) -> int:
    return len(_text(a))


def ceil(a: Any) -> float:
    x = float(_number(a))
    return x if not math.isfinite(x) else float(math.ceil(x))


def floor(a: Any) -> float:
    x = float(_number(a))
    return x if not math.isfinite(x) else float(math.floor(x))


def sqrt(a: Any) -> float:
    x = float(_number(a))
    return math.sqrt(x) if x >= 0 else math.nan


def ln(a: Any) -> float:
    x = float(_number(a))
    if x == 0:
        return -math.inf
    return math.log(x) if x > 0 else math.nan


def exp_(a: Any) -> float:
    try:
        return math.exp(_number(a))
    except OverflowError:
        return math.inf


def sign(a: Any) -> int:
    x = _number(a)
    return (x > 0) - (x < 0)


def round_half_away(a: Any, digits: Any) -> Any:
    """``ROUND(x, d)``: half away from zero; integers stay integers."""
    x, d = _number(a), int(_number(digits))
    if isinstance(x, int):
        if d >= 0:
            return x
        unit = 10 ** (-d)
        q, r = divmod(abs(x), unit)
        q += 2 * r >= unit
        return int(math.copysign(q * unit, x))
    if not math.isfinite(x):
        return x
    scale = 10.0**d
    scaled = abs(x) * scale
    whole = math.floor(scaled)
    if scaled - whole >= 0.5:
        whole += 1
    return math.copysign(whole / scale, x)


def truth(value: Any) -> bool:
    """A non-NULL value used as a condition: booleans as they are, numbers != 0."""
    if isinstance(value, bool):
        return value
    return _number(value) != 0


def and_(left: Any, right: Callable[[Any], Any], row: Any) -> Any:
    """Three-valued AND: FALSE wins over NULL."""
    if left is not None and not truth(left):
        return False
    r = right(row)
    if r is not None and not truth(r):
        return False
    return None if left is None or r is None else True


def or_(left: Any, right: Callable[[Any], Any], row: Any) -> Any:
    """Three-valued OR: TRUE wins over NULL."""
    if left is not None and truth(left):
        return True
    r = right(row)
    if r is not None and truth(r):
        return True
    return None if left is None or r is None else False


def not_distinct(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return eq(a, b)


def in_constants(value: Any, values: tuple[Any, ...], has_null: bool) -> Any:
    if value is None:
        return None
    if any(eq(value, v) for v in values):
        return True
    return None if has_null else False


def in_values(value: Any, values: Sequence[Any]) -> Any:
    present = tuple(v for v in values if v is not None)
    return in_constants(value, present, len(present) < len(values))


def between(value: Any, low: Any, high: Any) -> Any:
    above = None if value is None or low is None else value >= low
    below = None if value is None or high is None else value <= high
    if above is False or below is False:
        return False
    return None if above is None or below is None else True


def nullif(a: Any, b: Any) -> Any:
    return None if a is not None and b is not None and eq(a, b) else a


def extreme(pick: Callable[..., Any], values: Sequence[Any]) -> Any:
    """LEAST / GREATEST: NULLs are skipped; all NULL gives NULL."""
    present = [v for v in values if v is not None]
    return pick(present) if present else None


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str, escape: str | None, insensitive: bool) -> re.Pattern[str]:
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if escape is not None and ch == escape:
            out.append(re.escape(next(chars, "")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if insensitive else 0))


def like(value: Any, pattern: Any, escape: str | None, insensitive: bool) -> bool:
    regex = _like_regex(_text(pattern), escape, insensitive)
    return regex.fullmatch(_text(value)) is not None


# ---- CAST -------------------------------------------------------------------------------

_INT_BITS = {"TINYINT": 8, "SMALLINT": 16, "INT": 32, "BIGINT": 64, "INT128": 128, "MEDIUMINT": 32}
_FLOATS = {"DOUBLE", "FLOAT", "DECIMAL", "BIGDECIMAL"}
_TEXTS = {"TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR"}
_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMPNTZ", "DATETIME"}
_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_TRUE = {"true", "t", "1", "yes", "y", "on"}
_FALSE = {"false", "f", "0", "no", "n", "off"}


def caster(type_name: str, *, safe: bool) -> Callable[[Any], Any]:
    """The conversion ``CAST(x AS type_name)`` (``TRY_CAST`` when ``safe``: NULL on failure)."""
    convert: Callable[[Any], Any]
    if type_name in _INT_BITS:
        bits = _INT_BITS[type_name]
        convert = functools.partial(to_int, bits=bits)
    elif type_name in _FLOATS:
        convert = to_double
    elif type_name in _TEXTS:
        convert = to_varchar
    elif type_name == "BOOLEAN":
        convert = to_boolean
    elif type_name in _TIMESTAMPS:
        convert = to_timestamp
    else:
        raise DefinitionError(
            f"CAST to {type_name} cannot be evaluated in-process",
            fix="cast to BIGINT, INT, DOUBLE, DECIMAL, VARCHAR, BOOLEAN or TIMESTAMP",
        )

    def cast(value: Any) -> Any:
        if value is None:
            return None
        try:
            return convert(value)
        except (SqlEvalError, ValueError, OverflowError, TypeError) as exc:
            if safe:
                return None
            raise SqlEvalError(f"cannot CAST {value!r} AS {type_name}: {exc}") from None

    return cast


def to_int(value: Any, *, bits: int = 64) -> int:
    if isinstance(value, bool):
        result = int(value)
    elif isinstance(value, int):
        result = value
    elif isinstance(value, float):
        result = round(value)  # half to even, as DuckDB casts a DOUBLE
    elif isinstance(value, str):
        text = value.strip()
        if _NUMERIC_TEXT.fullmatch(text) is None:
            raise ValueError(f"{value!r} is not a number")
        try:
            result = int(text)
        except ValueError:
            result = int(round_half_away(float(text), 0))
    else:
        raise TypeError(f"{type(value).__name__} cannot become an integer")
    limit = 1 << (bits - 1)
    if not -limit <= result < limit:
        raise OverflowError(f"{result} is out of range for a {bits}-bit integer")
    return result


def to_double(value: Any) -> float:
    if isinstance(value, str):
        return float(value.strip())
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"{type(value).__name__} cannot become a double")


def to_varchar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean")
    return truth(value)


def to_timestamp(value: Any) -> datetime:
    """Strings as ISO-8601 (a naive one is taken as UTC); datetimes pass through."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(_text(value).strip().replace(" UTC", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
