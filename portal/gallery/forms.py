from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from partners.models import Sector
from portal.forms import CAPABILITY_LABELS
from usecases.selectors import gallery_partners


class GalleryFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    sector = forms.ChoiceField(label=_("Sector"), required=False, choices=[("", _("All sectors")), *Sector.choices])
    capability = forms.ChoiceField(label=_("Capability"), required=False, choices=[("", _("All capabilities"))])
    partner = forms.ChoiceField(label=_("Partner"), required=False, choices=[("", _("All partners"))])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["capability"].choices = [("", _("All capabilities")), *CAPABILITY_LABELS]
        self.fields["partner"].choices = [("", _("All partners")), *((p.slug, p.name) for p in gallery_partners())]
        self.fields["q"].widget.attrs.update({"type": "search", "placeholder": _("Title, story or partner")})
