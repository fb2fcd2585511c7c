"""The OpenAPI 3.1 document of the REST API, generated from the route table (`Operation`s) and pydantic models.

subscriptions/api.py registers its routes from the same `Operation` list it hands to `document`, and every model
a handler answers with is the one named here; OpenAPI 3.1 speaks JSON Schema 2020-12, pydantic's own dialect,
so the schemas go in as pydantic writes them (under #/components/schemas). Every operation documents its
success answers, the problems it is known for, and a `default` problem+json answer for everything else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from subscriptions.models import ProblemOut

PROBLEM = "application/problem+json"
REF = "#/components/schemas/{model}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Answer:
    description: str
    model: type[BaseModel] | None = None  # None: no body
    many: bool = False  # a JSON array of `model`
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    scope: Literal["read", "write"] | None  # None: no key needed
    answers: dict[int, Answer]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    problems: tuple[int, ...] = field(default=())

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _content(answer: Answer, media: str = "application/json") -> dict[str, Any]:
    if answer.model is None:
        return {}
    schema = {"type": "array", "items": _ref(answer.model)} if answer.many else _ref(answer.model)
    return {"content": {media: {"schema": schema}}}


def _parameters(op: Operation, defs: dict[str, Any]) -> list[dict[str, Any]]:
    params = [{"name": name.strip("{}"), "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
              for name in op.path.split("/") if name.startswith("{")]
    if op.query is not None:
        schema = defs[op.query.__name__]
        required = set(schema.get("required", ()))
        params += [{"name": name, "in": "query", "required": name in required, "schema": prop}
                   for name, prop in schema["properties"].items()]
    return params


def _responses(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in op.answers.items():
        headers = {name: {"schema": {"type": "string"}} for name in answer.headers}
        responses[str(status)] = {"description": answer.description, **_content(answer),
                                  **({"headers": headers} if headers else {})}
    problem = Answer("a problem (RFC 9457)", ProblemOut)
    for status in (*op.problems, *((401, 403, 429) if op.scope else ())):
        responses.setdefault(str(status), {"description": problem.description, **_content(problem, PROBLEM)})
    responses["default"] = {"description": "any other problem (RFC 9457)", **_content(problem, PROBLEM)}
    return responses


def _operation(op: Operation, defs: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "responses": _responses(op)}
    if params := _parameters(op, defs):
        spec["parameters"] = params
    if op.body is not None:
        spec["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body)}}}
    spec["security"] = [{"bearer": [op.scope]}] if op.scope else []
    return spec


def _schemas(operations: Sequence[Operation]) -> dict[str, Any]:
    models = {ProblemOut} | {op.body for op in operations if op.body} | {op.query for op in operations if op.query}
    models |= {a.model for op in operations for a in op.answers.values() if a.model}
    _, top = models_json_schema([(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
                                ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


def document(operations: Sequence[Operation], *, title: str = "Vigie", version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`."""
    defs = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, defs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Open-data change notifications: subscriptions, signed webhooks, current state."},
        "paths": paths,
        "components": {"schemas": defs, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "a tenant's API key (vk_…)"}}},
    }
