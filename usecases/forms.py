from __future__ import annotations

import json

from django import forms

from inference.capabilities import CAPABILITY_NAMES
from partners.models import Sector
from usecases.selectors import gallery_partners

CAPABILITY_CHOICES = [(name, name.replace("_", " ").capitalize()) for name in CAPABILITY_NAMES]


class GalleryFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=100)
    sector = forms.ChoiceField(label="Sector", required=False, choices=[("", "All sectors"), *Sector.choices])
    capability = forms.ChoiceField(label="Capability", required=False, choices=[("", "All capabilities")])
    partner = forms.ChoiceField(label="Partner", required=False, choices=[("", "All partners")])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["capability"].choices = [("", "All capabilities"), *CAPABILITY_CHOICES]
        self.fields["partner"].choices = [("", "All partners"), *((p.slug, p.name) for p in gallery_partners())]
        self.fields["q"].widget.attrs.update({"type": "search", "placeholder": "Title, story or partner"})


class UseCaseForm(forms.Form):
    """What a partner writes about a showcase; the review fields are the operators' alone."""

    title = forms.CharField(max_length=200)
    sector = forms.ChoiceField(choices=Sector.choices)
    capabilities = forms.MultipleChoiceField(
        choices=CAPABILITY_CHOICES, widget=forms.CheckboxSelectMultiple, help_text="The capabilities it uses."
    )
    summary = forms.CharField(max_length=300, help_text="One or two sentences for the gallery card.")
    story = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)
    results = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="One result a line.")
    try_capability = forms.ChoiceField(
        label="'Try it' capability",
        choices=[("", "The first that fits the example"), *CAPABILITY_CHOICES],
        required=False,
    )
    example_input = forms.CharField(
        label="Example input (JSON)",
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        required=False,
        help_text='What "Try it" puts in the playground, e.g. {"text": "...", "top_k": 5}.',
    )
    image = forms.ImageField(required=False, help_text="Optional: a picture of the result (PNG or JPEG).")
    image_caption = forms.CharField(max_length=200, required=False)

    def clean_example_input(self) -> dict:
        raw = self.cleaned_data["example_input"].strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("The example must be a JSON object.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        chosen, example = data.get("try_capability"), data.get("example_input")
        if chosen and example:
            from inference.capabilities import CAPABILITIES

            if not CAPABILITIES[chosen].input_serializer(data=example).is_valid():
                self.add_error("example_input", f"This example is not a valid input for {chosen}.")
        return data


class RejectForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), help_text="The partner sees this reason; say what to change."
    )
