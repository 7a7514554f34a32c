from __future__ import annotations

from django import forms

from partners.models import Sector
from portal.forms import CAPABILITY_LABELS
from usecases.selectors import gallery_partners


class GalleryFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=100)
    sector = forms.ChoiceField(label="Sector", required=False, choices=[("", "All sectors"), *Sector.choices])
    capability = forms.ChoiceField(label="Capability", required=False, choices=[("", "All capabilities")])
    partner = forms.ChoiceField(label="Partner", required=False, choices=[("", "All partners")])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["capability"].choices = [("", "All capabilities"), *CAPABILITY_LABELS]
        self.fields["partner"].choices = [("", "All partners"), *((p.slug, p.name) for p in gallery_partners())]
        self.fields["q"].widget.attrs.update({"type": "search", "placeholder": "Title, story or partner"})
