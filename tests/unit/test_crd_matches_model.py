"""The CRD, the typed model and the status keys cannot drift apart: every spec property in the
CRD is a model field (by its alias) and back, required means required in both, and status
holds exactly the keys status.py owns."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from syncjob_operator.model import SyncJobSpec
from syncjob_operator.status import OWNED_KEYS

CRD = Path(__file__).resolve().parents[2] / "crds" / "syncjob.dev_syncjobs.yaml"


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through Optional, tuples and lists; None for plain values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            model = _model_of(arg)
            if model is not None:
                return model
    return None


def _pairs(model: type[BaseModel], node: dict[str, Any], path: str) -> list[tuple[str, Any, Any]]:
    """(path, model side, CRD side) for the field names and required names of every object."""
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}
    required = {alias for alias, info in fields.items() if info.is_required()}
    found = [
        (f"{path} properties", sorted(fields), sorted(node.get("properties", {}))),
        (f"{path} required", sorted(required), sorted(node.get("required", []))),
    ]
    for alias, info in fields.items():
        child = _model_of(info.annotation)
        if child is None:
            continue
        schema = node["properties"][alias]
        schema = schema.get("items", schema)  # a list of models: its items
        found += _pairs(child, schema, f"{path}.{alias}")
    return found


@pytest.mark.parametrize(
    ("path", "model_side", "crd_side"),
    [
        pytest.param(*pair, id=pair[0])
        for pair in _pairs(SyncJobSpec, _schema()["properties"]["spec"], "spec")
    ],
)
def test_every_spec_object_has_the_same_fields_in_the_crd_and_the_model(
    path: str, model_side: list[str], crd_side: list[str]
) -> None:
    assert model_side == crd_side, f"{path}: model {model_side} vs CRD {crd_side}"


def test_status_holds_exactly_the_keys_status_py_owns() -> None:
    status = sorted(_schema()["properties"]["status"]["properties"])
    assert status == sorted(OWNED_KEYS)


def test_the_walk_reaches_every_nested_model() -> None:
    # Why: a walk that stopped at the top would pass while nested objects drift.
    paths = {pair[0] for pair in _pairs(SyncJobSpec, _schema()["properties"]["spec"], "spec")}
    assert {
        "spec.awsIoTTwinMaker.credentialsSecretRef properties",
        "spec.truto.resources properties",
        "spec.truto.tokenSecretRef properties",
        "spec.truto.schedule properties",
    } <= paths
