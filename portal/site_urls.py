"""Every page for people: the gallery, the partner portal, the playground and the API guide."""

from django.urls import include, path
from django.views.i18n import set_language

from portal import directory, guide, join

urlpatterns = [
    path("i18n/setlang/", set_language, name="set_language"),  # the language switch: a POST that sets the cookie
    path("portal/", include("portal.urls")),
    path("playground/", include("portal.playground.urls")),
    path("api/guide/", guide.api_guide, name="api-guide"),
    path("join/", join.join, name="join"),
    path("partners/", directory.directory, name="partners"),
    path("partners/<slug:slug>/", directory.partner_profile, name="partner-profile"),
    path("", include("portal.gallery.urls")),
]
