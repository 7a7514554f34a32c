"""The language of an answer: pages follow the visitor (the switch's cookie, else Accept-Language, else English);
the API answers in English whatever the request asks, as OpenAI's API does."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

# Machine-facing paths. /api/guide/ and /api/docs/ are pages for people and follow the visitor's language.
ENGLISH_ONLY_PREFIXES = ("/api/v1/", "/v1/", "/api/schema/")


class SiteLocaleMiddleware(LocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if request.path.startswith(ENGLISH_ONLY_PREFIXES):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
            return
        super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if request.path.startswith(ENGLISH_ONLY_PREFIXES):
            return response
        return super().process_response(request, response)
