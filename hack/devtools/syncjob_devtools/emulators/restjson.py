"""rest-json plumbing read from botocore's own service model.

Routes, URI/query/body member locations, constraints (required, length, range,
enum, pattern) and error HTTP statuses all come from
``botocore/data/<service>/<version>/service-2.json``, so the emulator follows
whatever model boto3 itself uses instead of a hand-copied subset.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from botocore.loaders import Loader
from botocore.model import (
    ListShape,
    MapShape,
    NoShapeFoundError,
    OperationModel,
    ServiceModel,
    Shape,
    StringShape,
    StructureShape,
)
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

# Errors a real AWS front end returns before the service model is involved.
FRONT_END_ERRORS: Mapping[str, int] = {
    "MissingAuthenticationTokenException": 403,
    "IncompleteSignatureException": 403,
    "InvalidSignatureException": 403,
    "UnrecognizedClientException": 403,
    "ExpiredTokenException": 403,
    "UnknownOperationException": 404,
    "SerializationException": 400,
}


@functools.cache
def load_service_model(service: str) -> ServiceModel:
    raw = Loader().load_service_model(service, "service-2")
    return ServiceModel(raw, service_name=service)


class AwsError(Exception):
    """An error response in AWS's rest-json shape; status defaults from the model."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def model_error_status(model: ServiceModel, code: str) -> int | None:
    """HTTP status the model declares for an error code (front-end errors included)."""
    if code in FRONT_END_ERRORS:
        return FRONT_END_ERRORS[code]
    try:
        shape = model.shape_for(code)
    except NoShapeFoundError:
        return None
    error = shape.metadata.get("error") if shape.metadata.get("exception") else None
    return int(error["httpStatusCode"]) if error else None


def enum_values(model: ServiceModel, shape_name: str) -> list[str]:
    shape = model.shape_for(shape_name)
    return list(shape.enum) if isinstance(shape, StringShape) else []


def error_code_for_status(model: ServiceModel, operation: str | None, status: int) -> str:
    """The code the operation (else the model) declares for a status: faults given only one."""
    candidates = list(model.operation_model(operation).error_shapes) if operation else []
    candidates += [model.shape_for(name) for name in model.shape_names]
    for shape in candidates:
        error = shape.metadata.get("error")
        if shape.metadata.get("exception") and error and error["httpStatusCode"] == status:
            return shape.name
    return "ServiceUnavailableException" if status == 503 else "InternalServerException"


@functools.cache
def _compiled_pattern(java_pattern: str) -> re.Pattern[str]:
    # The models use Java regexes; Python's re lacks \p{..} classes, so map the
    # ones the models use onto their nearest equivalents (\w covers letters and
    # digits, \s the separators). Slightly looser, never stricter.
    translated = (
        java_pattern.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\w").replace(r"\p{Z}", r"\s")
    )
    return re.compile(translated)


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return str(value)


def _check_string(shape: Shape, value: str, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    fail = f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: Member must"
    if "min" in meta and len(value) < meta["min"]:
        problems.append(f"{fail} have length greater than or equal to {meta['min']}")
    if "max" in meta and len(value) > meta["max"]:
        problems.append(f"{fail} have length less than or equal to {meta['max']}")
    enum = shape.enum if isinstance(shape, StringShape) else None
    if enum and value not in enum:
        problems.append(f"{fail} satisfy enum value set: [{', '.join(enum)}]")
    pattern = meta.get("pattern")
    # Coral matches the whole value (Java's Matcher.matches), hence fullmatch.
    if pattern and not _compiled_pattern(pattern).fullmatch(value):
        problems.append(f"{fail} satisfy regular expression pattern: {pattern}")


def _serialization_error(path: str, expected: str) -> AwsError:
    return AwsError(
        "SerializationException", f"Unexpected value type at '{path}': expected {expected}"
    )


def validate(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    """Append Coral-style constraint violations; raise on JSON type mismatches."""
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            raise _serialization_error(path, "structure")
        for name in shape.required_members:
            if value.get(name) is None:
                member_path = f"{path}.{name}" if path else name
                problems.append(
                    f"Value null at '{member_path}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        if shape.metadata.get("union") and sum(v is not None for v in value.values()) != 1:
            problems.append(
                f"Value at '{path}' failed to satisfy constraint: Member must have exactly one "
                "member set"
            )
        for name, member_value in value.items():
            if name in shape.members and member_value is not None:
                member_path = f"{path}.{name}" if path else name
                validate(shape.members[name], member_value, member_path, problems)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            raise _serialization_error(path, "list")
        _check_size(shape, value, path, problems)
        for index, item in enumerate(value, start=1):
            validate(shape.member, item, f"{path}.{index}.member", problems)
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            raise _serialization_error(path, "map")
        _check_size(shape, value, path, problems)
        for key, item in value.items():
            validate(shape.key, key, f"{path}.{key}.key", problems)
            validate(shape.value, item, f"{path}.{key}.value", problems)
    elif kind == "string":
        if not isinstance(value, str):
            raise _serialization_error(path, "string")
        _check_string(shape, value, path, problems)
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _serialization_error(path, kind)
        _check_range(shape, value, path, problems)
    elif kind == "boolean" and not isinstance(value, bool):
        raise _serialization_error(path, "boolean")


def _check_size(
    shape: Shape, value: list[Any] | dict[str, Any], path: str, problems: list[str]
) -> None:
    meta = shape.metadata
    fail = f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: Member must"
    if "min" in meta and len(value) < meta["min"]:
        problems.append(f"{fail} have length greater than or equal to {meta['min']}")
    if "max" in meta and len(value) > meta["max"]:
        problems.append(f"{fail} have length less than or equal to {meta['max']}")


def _check_range(shape: Shape, value: int, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    fail = f"Value '{value}' at '{path}' failed to satisfy constraint: Member must"
    if "min" in meta and value < meta["min"]:
        problems.append(f"{fail} have value greater than or equal to {meta['min']}")
    if "max" in meta and value > meta["max"]:
        problems.append(f"{fail} have value less than or equal to {meta['max']}")


def validation_error(problems: list[str]) -> AwsError:
    count = len(problems)
    plural = "error" if count == 1 else "errors"
    return AwsError(
        "ValidationException", f"{count} validation {plural} detected: " + "; ".join(problems)
    )


class RouteOnRawPath:
    """Route on the path as sent, the way AWS front ends do.

    URI labels are percent-encoded by the SDK, and a label may hold a slash
    (GetWorkspace takes an ARN: ``/workspaces/arn%3A...%3Aworkspace%2Fplant-1``).
    Matching the decoded path would split that label, so routes match the raw
    path and ``uri_labels`` decodes the captured values.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw:
            scope = {**scope, "path": raw.decode("ascii")}
        await self.app(scope, receive, send)


def uri_labels(path_params: Mapping[str, str]) -> dict[str, str]:
    return {name: unquote(value) for name, value in path_params.items()}


class OperationBinding:
    """How one model operation maps onto HTTP: route, method and input members."""

    def __init__(self, operation: OperationModel) -> None:
        self.name = operation.name
        self.method: str = operation.http["method"]
        uri: str = operation.http["requestUri"].split("?", 1)[0]
        # Greedy labels ({key+}) may contain slashes; Starlette spells that {key:path}.
        self.path = re.sub(r"\{(\w+)\+\}", r"{\1:path}", uri)
        self.input_shape: StructureShape | None = operation.input_shape
        self._uri: dict[str, str] = {}
        self._query: dict[str, str] = {}
        self._body: set[str] = set()
        if self.input_shape is not None:
            for name, member in self.input_shape.members.items():
                location = member.serialization.get("location")
                wire = member.serialization.get("name", name)
                if location == "uri":
                    self._uri[name] = wire
                elif location == "querystring":
                    self._query[name] = wire
                elif location is None:
                    self._body.add(name)

    def parse(self, labels: Mapping[str, str], query: QueryParams, body: bytes) -> dict[str, Any]:
        """Collect the input members from URI labels (decoded), query and JSON body; validate."""
        params: dict[str, Any] = {name: labels[wire] for name, wire in self._uri.items()}
        if self.input_shape is None:
            return params
        for name, wire in self._query.items():
            if wire in query:
                params[name] = self._query_value(self.input_shape.members[name], query, wire)
        if self._body and body.strip():
            try:
                document = json.loads(body)
            except ValueError as exc:
                raise AwsError("SerializationException", "Request body is not valid JSON") from exc
            if not isinstance(document, dict):
                raise _serialization_error("", "structure")
            params.update({k: v for k, v in document.items() if k in self._body})
        problems: list[str] = []
        validate(self.input_shape, params, "", problems)
        if problems:
            raise validation_error(problems)
        return params

    @staticmethod
    def _query_value(shape: Shape, query: QueryParams, wire: str) -> Any:
        if isinstance(shape, ListShape):
            return query.getlist(wire)
        raw = query[wire]
        if shape.type_name in ("integer", "long"):
            try:
                return int(raw)
            except ValueError as exc:
                raise _serialization_error(wire, shape.type_name) from exc
        if shape.type_name == "boolean":
            return raw == "true"
        return raw
