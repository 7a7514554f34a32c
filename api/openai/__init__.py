"""The OpenAI-compatible surface under /v1/: the official SDK works with base_url=<site>/v1.

Each call becomes one platform job (or tuning job, or dataset) through the same services, so keys, scopes,
quotas, usage and errors are the platform's own.
"""
