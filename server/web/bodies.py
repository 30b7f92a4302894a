"""The one way to read a request body: JSON or a form, strictly.

aiohttp's ``request.json()`` and ``request.post()`` let malformed bodies escape as
UnicodeDecodeError, RecursionError (deep nesting overflows the JSON parser's stack)
or silently replace invalid UTF-8 with U+FFFD. Here every body is decoded as strict
UTF-8, nesting is bounded before parsing, and every failure becomes ``invalid``
(400) before a handler has touched the database.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from pydantic import BaseModel, ValidationError

from server.core.errors import invalid

# Parley's deepest legitimate body (a scheduling problem) nests about six levels.
MAX_DEPTH = 64
MAX_FORM_FIELDS = 2000
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
# A JSON string literal, escapes included: brackets inside strings do not nest. The
# possessive loop and the tolerated unterminated end keep the scan linear on hostile
# input such as a long run of escaped quotes.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(f"{where}: not valid UTF-8.") from None


def _check_depth(text: str, where: str) -> None:
    # Cheap first: a body with few brackets cannot be deep (the common case costs two
    # counts); otherwise strip strings and take the running maximum of the brackets.
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub('""', text))
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH:
        raise invalid(f"{where}: nested more than {MAX_DEPTH} levels deep.")


def parse_json(raw: bytes | str, where: str = "body") -> Any:
    """Parse JSON text strictly: UTF-8, at most MAX_DEPTH deep, no NaN or Infinity
    (PostgreSQL's JSON refuses them)."""
    text = _text(raw, where) if isinstance(raw, bytes) else raw
    _check_depth(text, where)

    def refuse_constant(name: str) -> Any:
        raise invalid(f"{where}: {name} is not a JSON number.")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise invalid(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
    except RecursionError:  # the depth check should have caught it; never a 500
        raise invalid(f"{where}: nested too deeply.") from None


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (an empty body is invalid, as aiohttp's would be)."""
    return parse_json(await request.read())


def _charset_ok(request: web.Request) -> bool:
    charset = (request.charset or "utf-8").lower()
    return charset in {"utf-8", "utf8", "us-ascii", "ascii"}


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """A posted form's text fields. A body of another type reads as an empty form (as
    aiohttp does); file uploads are refused, since no Parley form takes one."""
    if request.content_type not in FORM_TYPES:
        return MultiDictProxy(MultiDict())
    if not _charset_ok(request):
        raise invalid("body: forms must be sent as UTF-8.")
    if request.content_type == "multipart/form-data":
        return await _read_multipart(request)
    text = _text(await request.read(), "body")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict",
                          max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise invalid("body: a form field is not valid UTF-8.") from None
    except ValueError:
        raise invalid(f"body: at most {MAX_FORM_FIELDS} form fields.") from None
    return MultiDictProxy(MultiDict(pairs))


async def _read_multipart(request: web.Request) -> MultiDictProxy[str]:
    try:
        posted = await request.post()
    except UnicodeDecodeError:
        raise invalid("body: a form field is not valid UTF-8.") from None
    except ValueError:  # a malformed boundary or part
        raise invalid("body: not a valid multipart form.") from None
    out: MultiDict[str] = MultiDict()
    for key, value in posted.items():
        if not isinstance(value, str):
            raise invalid(f"{key}: file uploads are not accepted here.")
        out.add(key, value)
    return MultiDictProxy(out)


Fields = dict[str, list[str]]


async def read_fields(request: web.Request) -> Fields:
    """A page form's fields, or the same fields sent as a JSON object: each name with
    its values in order (a JSON list gives several, ``true`` a ticked box, ``false``
    and ``null`` none), so one handler serves the form and the script."""
    if request.content_type == "application/json":
        body = await read_json(request)
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise invalid("body: expected an object.")
        out: Fields = {}
        for key, value in body.items():
            values = value if isinstance(value, list) else [value]
            kept = ["on" if v is True else str(v) for v in values if v is not None and v is not False]
            if kept:
                out[key] = kept
        return out
    form = await read_form(request)
    return {key: [str(v) for v in form.getall(key)] for key in set(form.keys())}


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], body: Any) -> M:
    """``body`` as ``model``, or ``invalid`` naming the first field that is wrong
    (``"items.0.title: Field required"``)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise invalid(f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}") from None
