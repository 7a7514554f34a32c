"""Documentation serializers for the OpenAPI schema of the jobs API (validation lives in the capabilities)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter
from rest_framework import serializers

from capabilities import CAPABILITIES
from inference.models import JobStatus


class JobRequestDoc(serializers.Serializer):
    capability = serializers.ChoiceField(choices=sorted(CAPABILITIES))
    input = serializers.DictField(help_text="The capability's input; see the examples.")
    params = serializers.DictField(required=False)
    model = serializers.CharField(required=False, help_text="A registry model or your own tuned model (ft:...).")
    webhook_url = serializers.URLField(required=False)


class JobUsageDoc(serializers.Serializer):
    units = serializers.IntegerField()


class JobDoc(serializers.Serializer):
    id = serializers.UUIDField()
    object = serializers.CharField()
    capability = serializers.CharField()
    model = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.values)
    input = serializers.DictField()
    params = serializers.DictField()
    output = serializers.DictField(allow_null=True)
    error = serializers.DictField(allow_null=True)
    usage = JobUsageDoc()
    webhook_url = serializers.CharField(allow_blank=True)
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class JobListDoc(serializers.Serializer):
    object = serializers.CharField()
    data = JobDoc(many=True)
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)


JOB_EXAMPLES = [
    OpenApiExample(name, value={"capability": name, "input": capability.example_input}, request_only=True)
    for name, capability in sorted(CAPABILITIES.items())
]
WAIT_PARAMETER = OpenApiParameter(
    "wait", float, description="Seconds to wait for the result (200 when finished, else 202).", required=False
)
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="A retry with the same key returns the same job.",
)
