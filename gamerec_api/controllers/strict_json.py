"""JSON request bodies decoded strictly, in one typed pass, and only when they are labelled JSON.

Litestar's stock path for `data: SomeStruct` is `request.json()` (an untyped msgspec decode into dicts and lists)
followed by a non-strict `msgspec.convert` in the signature model. That has two faults for an API:

- the untyped decode recurses into whatever nesting the client sends, so `[[[[...]]]]` 1,000 deep is a
  RecursionError and a 500 before any schema is consulted;
- non-strict conversion coerces `"k": "10"` to 10 and `"user_id": 1.0` to 1 (it exists for query strings,
  where everything arrives as text), although the API promises a 4xx for wrong types.

`StrictJSONRequest.json()` instead decodes the body straight into the handler's `data` annotation with
`msgspec.json.Decoder(type, strict=True)`: a typed decode stops at the first value that cannot be what the schema
says (an array where an int belongs is refused at its first `[`, an unknown field at its key), so nesting depth
never matters, and it is cheaper than decode-then-convert. The signature model then gets an instance of the
declared Struct, which its own `convert` passes through unchanged, so the OpenAPI schema, `data: PredictRequest`
and the 400 format all stay Litestar's.

The Content-Type check (415 unless `application/json` or `application/*+json`, parameters allowed) is a scan of
the raw ASGI headers, done only when a handler asks for a JSON body. It subclasses `LeanBodyRequest`, so the
hot path keeps that body reader; it is set per controller with `request_class=`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.exceptions import ClientException, ValidationException
from litestar.types import Empty

from gamerec_api.controllers.lean_request import LeanBodyRequest


class UnsupportedMediaType(ClientException):
    """415: a body that is not labelled JSON is not parsed as JSON (documented on routes that take a body)."""

    status_code = 415
    detail = "Unsupported Media Type: send the body with 'Content-Type: application/json'"


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(annotation: Any) -> msgspec.json.Decoder[Any]:
    """One strict decoder per body type, built on first use (a Decoder is reusable and thread-safe)."""
    decoder = _decoders.get(annotation)
    if decoder is None:
        decoder = _decoders[annotation] = msgspec.json.Decoder(annotation, strict=True)
    return decoder


def is_json_content_type(headers: list[tuple[bytes, bytes]] | Any) -> bool:
    """True when the ASGI headers carry `Content-Type: application/json` (or `application/<x>+json`), with or
    without parameters such as `; charset=utf-8`. A missing header is not JSON."""
    for name, value in headers:
        if name == b"content-type":
            media = value.partition(b";")[0].strip().lower()
            return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
    return False


def _unwrap(info: Any) -> Any:
    """The Struct inside annotations, optionals and lists (None when there is none)."""
    while isinstance(info, msgspec.inspect.Metadata | msgspec.inspect.UnionType | msgspec.inspect.ListType):
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        elif isinstance(info, msgspec.inspect.ListType):
            info = info.item_type
        else:
            info = next((t for t in map(_unwrap, info.types) if isinstance(t, msgspec.inspect.StructType)), None)
    return info


def _struct_at(annotation: Any, key: str | None) -> type[msgspec.Struct] | None:
    """The Struct type at a field path ("filter.genres") of `annotation`, through annotations, optionals, lists."""
    info: Any = _unwrap(msgspec.inspect.type_info(annotation))
    for part in (key or "").replace("[", ".[").split("."):
        if not part or part.startswith("["):
            continue
        if not isinstance(info, msgspec.inspect.StructType):
            return None
        info = _unwrap(next((f.type for f in info.fields if f.encode_name == part), None))
    return info.cls if isinstance(info, msgspec.inspect.StructType) else None


def with_known_fields(message: str, key: str | None, annotation: Any) -> str:
    """An unknown-field message with the fields that object does know appended ("known: genres, tags, ..."), so
    a typo in a request's `filter` names its fix."""
    if not message.startswith("Object contains unknown field"):
        return message
    cls = _struct_at(annotation, key)
    if cls is None:
        return message
    return f"{message}; known: {', '.join(f.encode_name for f in msgspec.structs.fields(cls))}"


def field_key(message: str) -> tuple[str, str | None]:
    """Split msgspec's "Expected `int`, got `str` - at `$.k`" into the message and the field path ("k")."""
    text, sep, where = message.partition(" - at `$")
    if not sep:
        return message, None
    return text, where.rstrip("`").lstrip(".") or None


class StrictJSONRequest(LeanBodyRequest):
    __slots__ = ()

    async def json(self) -> Any:
        """The body decoded strictly into the route's `data` type; 415 for a body not labelled JSON, 400 with the
        field for a wrong type or value (as Litestar's own validation errors), 400 for malformed JSON."""
        value = self._json
        if value is Empty:
            state = self._connection_state
            value = state.json
            if value is Empty:
                if not is_json_content_type(self.scope["headers"]):
                    raise UnsupportedMediaType
                value = state.json = self._decode(await self.body())
            self._json = value
        return value

    def _decode(self, body: bytes) -> Any:
        field = self.route_handler.parsed_data_field
        try:
            if field is None:  # json() on a route without `data` (nothing here does that): decode untyped
                return msgspec.json.decode(body or b"null")
            return _decoder(field.annotation).decode(body or b"null")
        except RecursionError as exc:  # untyped input, or a skipped unknown field of a Struct that allows them
            raise ClientException(detail="the JSON body is nested too deeply") from exc
        except msgspec.ValidationError as exc:
            message, key = field_key(str(exc))
            if field is not None:
                message = with_known_fields(message, key, field.annotation)
            entry: dict[str, str] = {"message": message, "source": "body"}
            if key:
                entry["key"] = key
            raise ValidationException(
                detail=f"Validation failed for {self.method} {self.url.path}", extra=[entry]
            ) from exc
        except msgspec.DecodeError as exc:
            raise ClientException(detail=f"the body is not valid JSON: {exc}") from exc
