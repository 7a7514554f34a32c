"""The routes of the URL configuration, as text, for tests that must cover every one of them."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver


def routes_under(prefixes: tuple[str, ...], patterns=None, prefix: str = "") -> list[str]:
    """Every route whose text starts with one of `prefixes`, e.g. "api/v1/jobs/<str:job_id>"."""
    routes = []
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        text = prefix + str(pattern.pattern).lstrip("^").replace("/?$", "").rstrip("$")
        if isinstance(pattern, URLResolver):
            routes += routes_under(prefixes, pattern.url_patterns, text)
        elif isinstance(pattern, URLPattern) and text.startswith(prefixes):
            routes.append(text)
    return routes


def views_under(prefixes: tuple[str, ...], patterns=None, prefix: str = "") -> list[tuple[str, type]]:
    """(route, view class) of every class-based view whose route starts with one of `prefixes`."""
    found = []
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        text = prefix + str(pattern.pattern).lstrip("^").replace("/?$", "").rstrip("$")
        if isinstance(pattern, URLResolver):
            found += views_under(prefixes, pattern.url_patterns, text)
        elif isinstance(pattern, URLPattern) and text.startswith(prefixes):
            found.append((text, pattern.callback.view_class))
    return found
