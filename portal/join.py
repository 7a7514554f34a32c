"""The public "Join the alliance" page: a company applies; operators decide in the admin (partners.admin)."""

from __future__ import annotations

import smtplib

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from alliance.errors import DomainError, LimitReached
from partners.models import Sector
from partners.services import application_submit


class JoinForm(forms.Form):
    company_name = forms.CharField(label=_("Company name"), max_length=200)
    sector = forms.ChoiceField(label=_("Sector"), choices=Sector.choices)
    country = forms.RegexField(
        label=_("Country"),
        regex=r"^[A-Za-z]{2}$",
        max_length=2,
        help_text=_("Two letters (ISO 3166-1), e.g. KR."),
        error_messages={"invalid": _("Enter the two-letter country code, e.g. KR.")},
    )
    website = forms.URLField(label=_("Website"), required=False, assume_scheme="https")
    contact_name = forms.CharField(max_length=200, label=_("Your name"))
    contact_email = forms.EmailField(
        label=_("Your email"), help_text=_("We send the confirmation and the decision here.")
    )
    purpose = forms.CharField(
        label=_("What do you want to build?"), widget=forms.Textarea(attrs={"rows": 5}), max_length=4000
    )
    accepted_terms = forms.BooleanField(label=_("I accept the alliance's terms of participation."))
    # The honeypot: hidden from people (off-screen, not focusable, not autofilled); bots that fill every field are
    # answered as if accepted, and nothing is stored.
    nickname = forms.CharField(
        required=False,
        label=_("Leave this empty"),
        widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}),
    )


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest) -> HttpResponse:
    form = JoinForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                application_submit(
                    company_name=data["company_name"],
                    sector=data["sector"],
                    country=data["country"],
                    website=data["website"],
                    contact_name=data["contact_name"],
                    contact_email=data["contact_email"],
                    purpose=data["purpose"],
                    accepted_terms=data["accepted_terms"],
                    address=request.META.get("REMOTE_ADDR"),
                    honeypot=data["nickname"],
                )
            except LimitReached as exc:
                form.add_error(None, exc.message)
                response = render(request, "portal/join.html", {"form": form}, status=429)
                response["Retry-After"] = str(max(1, int(exc.retry_after or 60)))
                return response
            except DomainError as exc:
                form.add_error(exc.param if exc.param in form.fields else None, exc.message)
            except (OSError, smtplib.SMTPException):
                form.add_error(
                    None, gettext("The confirmation email could not be sent, so nothing was stored. Try again.")
                )
                status = 503
            else:
                return render(request, "portal/join_received.html", {"email": data["contact_email"]})
    return render(request, "portal/join.html", {"form": form}, status=status)
