from __future__ import annotations

from django import forms


class RejectForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), help_text="The partner sees this reason; say what to change."
    )
