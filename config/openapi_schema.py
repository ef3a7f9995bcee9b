"""The API's schema class (``DEFAULT_SCHEMA_CLASS``), apart from config.openapi: that module is
imported by config.api, and drf-spectacular's AutoSchema imports DRF's generic views, which
need config.api's pagination class (a circular import)."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema as _AutoSchema
from rest_framework import serializers


class AutoSchema(_AutoSchema):
    """drf-spectacular's, plus one rule it leaves out: a required text field that trims
    whitespace (DRF's default) refuses text that is only whitespace, so its request schema
    says so (``pattern: \\S``, some character that is not whitespace)."""

    def _map_serializer_field(
        self, field: Any, direction: str, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
            and schema.get("type") == "string"
            and "pattern" not in schema
            # Its own pattern is added after this (drf-spectacular keeps a pattern it finds).
            and not any(isinstance(v, RegexValidator) for v in field.validators)
        ):
            schema["pattern"] = r"\S"
        return schema
