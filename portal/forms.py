from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from alliance.api.parsers import JsonRefused, json_loads_bounded
from alliance.errors import DomainError
from capabilities import CAPABILITIES, CAPABILITY_NAMES
from inference import tuning_config
from inference.models import DatasetTask, JobStatus
from partners.models import Role, Sector
from partners.scopes import CAPABILITY_SCOPES, RESOURCE_SCOPES
from portal.catalogue import LABELS
from usecases.images import check_showcase_image

CAPABILITY_CHOICES = [(name, name) for name in CAPABILITY_NAMES]
CAPABILITY_LABELS = [(name, LABELS.get(name, name)) for name in CAPABILITY_NAMES]


SCOPE_GROUPS = (
    (_("Capabilities"), [(name, name) for name in CAPABILITY_SCOPES]),
    (_("Resources"), [(scope, f"{scope}: {meaning}") for scope, meaning in RESOURCE_SCOPES.items()]),
)


class ApiKeyIssueForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=100, help_text=_("What the key is for, e.g. 'production chatbot'.")
    )
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=SCOPE_GROUPS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "None ticked: the key may do everything. Otherwise exactly what is ticked: the capabilities it may "
            "call, and the resources it may read or change (jobs:read shows only jobs of its capabilities)."
        ),
    )
    expires_in_days = forms.IntegerField(
        label=_("Expires in (days)"),
        min_value=1,
        max_value=3650,
        required=False,
        help_text=_("Empty: the key does not expire."),
    )

    def scope_groups(self) -> list[tuple[str, list]]:
        """The scope checkboxes in their groups, for the template."""
        boxes = {box.data["value"]: box for box in self["scopes"].subwidgets}
        return [(label, [boxes[value] for value, _ in choices]) for label, choices in SCOPE_GROUPS]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name.startswith("playground:"):
            raise forms.ValidationError(_("Names starting with 'playground:' are reserved for the playground."))
        return name


class ApiKeyRotateForm(forms.Form):
    grace_hours = forms.IntegerField(
        label=_("Old secret valid for (hours)"), min_value=0, max_value=168, initial=24, required=False
    )


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=[("", _("Any status")), *JobStatus.choices], required=False)
    capability = forms.ChoiceField(
        label=_("Capability"), choices=[("", _("Any capability")), *CAPABILITY_CHOICES], required=False
    )


class UsageFilterForm(forms.Form):
    capability = forms.ChoiceField(
        label=_("Capability"), choices=[("", _("All capabilities")), *CAPABILITY_CHOICES], required=False
    )


class InviteForm(forms.Form):
    email = forms.EmailField(
        label=_("Email"),
        help_text=_("We email a link; the person joins when they accept it (signing up there if they are new)."),
    )
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.VIEWER)


class InvitationSignUpForm(forms.Form):
    """A new account from an invitation: its email is the invited address, not a field."""

    username = forms.CharField(label=_("Username"), max_length=150, help_text=_("Letters, digits and @/./+/-/_ only."))
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 8 characters, not a common password."),
    )
    password2 = forms.CharField(
        label=_("Password again"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def __init__(self, *args, email: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_username(self) -> str:
        username = get_user_model().normalize_username(self.cleaned_data["username"].strip())
        try:
            get_user_model()._meta.get_field("username").run_validators(username)
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None
        return username

    def clean(self) -> dict:
        data = super().clean()
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords differ."))
        elif first and "username" in data:
            try:
                validate_password(first, get_user_model()(username=data["username"], email=self.email))
            except ValidationError as exc:
                self.add_error("password1", exc.messages)
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Data file"),
        help_text=_("JSONL or CSV. Classification: text, label. Generation: prompt, completion. Chat: JSONL messages."),
    )
    task = forms.ChoiceField(label=_("Task"), choices=DatasetTask.choices, initial=DatasetTask.CLASSIFICATION)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.ALLIANCE_DATASET_MAX_BYTES:
            raise forms.ValidationError(
                _("The file is %(size)s bytes; the limit is %(limit)s.")
                % {"size": upload.size, "limit": settings.ALLIANCE_DATASET_MAX_BYTES}
            )
        return upload


class TuningStartForm(forms.Form):
    dataset = forms.ChoiceField(label=_("Dataset"), choices=())
    method = forms.ChoiceField(
        label=_("Method"),
        choices=[(name, name) for name in tuning_config.METHODS],
        initial="default",
        help_text=_(
            "default: the task's recommended recipe; or a parameter-efficient method (LoRA, IA3, prompt or p-tuning)."
        ),
    )
    epochs = forms.IntegerField(
        label=_("Epochs"),
        min_value=1,
        max_value=20,
        required=False,
        help_text=_("Empty: the task's default number of epochs."),
    )

    def __init__(self, *args, datasets=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [
            (
                d.public_id,
                _("%(file)s · %(task)s · %(rows)s rows (%(id)s)")
                % {"file": d.filename, "task": d.task, "rows": d.stats.get("rows", 0), "id": d.public_id},
            )
            for d in datasets
        ]

    def hyperparameters(self) -> dict:
        epochs = self.cleaned_data.get("epochs")
        return {"epochs": epochs} if epochs else {}


class UseCaseForm(forms.Form):
    """What a partner writes about a showcase; the review fields are the operators' alone. The texts come in
    English and Korean; one language is enough (the gallery falls back to the other)."""

    title = forms.CharField(label=_("Title (English)"), max_length=200, required=False)
    title_ko = forms.CharField(label=_("Title (Korean)"), max_length=200, required=False)
    sector = forms.ChoiceField(label=_("Sector"), choices=Sector.choices)
    capabilities = forms.MultipleChoiceField(
        label=_("Capabilities"),
        choices=CAPABILITY_LABELS,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The capabilities it uses."),
    )
    summary = forms.CharField(
        label=_("Summary (English)"),
        max_length=300,
        required=False,
        help_text=_("One or two sentences for the gallery card."),
    )
    summary_ko = forms.CharField(label=_("Summary (Korean)"), max_length=300, required=False)
    story = forms.CharField(label=_("Story (English)"), widget=forms.Textarea(attrs={"rows": 6}), required=False)
    story_ko = forms.CharField(label=_("Story (Korean)"), widget=forms.Textarea(attrs={"rows": 6}), required=False)
    results = forms.CharField(
        label=_("Results"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text=_("One result a line."),
    )
    try_capability = forms.ChoiceField(
        label=_("'Try it' capability"),
        choices=[("", _("The first that fits the example")), *CAPABILITY_LABELS],
        required=False,
    )
    example_input = forms.CharField(
        label=_("Example input (JSON)"),
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        required=False,
        help_text=_('What "Try it" puts in the playground, e.g. {"text": "...", "top_k": 5}.'),
    )
    recipe = forms.CharField(
        label="Recipe (JSON)",
        widget=forms.Textarea(attrs={"rows": 10, "class": "mono"}),
        required=False,
        help_text='What "Try it" runs as real jobs, step by step: {"inputs": [{"name", "label", "example"}], '
        '"steps": [{"id", "capability", "model"?, "input", "params"?}]}; an input\'s strings may hold '
        "{{input.<name>}} and {{steps.<id>.output.<field>}}. Checked when saved; reviewed with the showcase.",
    )
    image = forms.FileField(
        label=_("Image"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
        help_text=_(
            "Optional: a picture of the result. PNG, JPEG or WebP, up to 8 MB and 16 megapixels; it is stored "
            "re-encoded, without its metadata."
        ),
    )
    image_caption = forms.CharField(label=_("Image caption"), max_length=200, required=False)

    def clean_image(self):
        upload = self.cleaned_data.get("image")
        if upload:
            try:
                check_showcase_image(upload)
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from None
        return upload

    def clean_example_input(self) -> dict:
        return _json_object(self.cleaned_data["example_input"], _("The example must be a JSON object."))

    def clean_recipe(self) -> dict:
        return _json_object(self.cleaned_data["recipe"], _("A recipe is a JSON object with `inputs` and `steps`."))

    def clean(self) -> dict:
        data = super().clean()
        for english, korean in (("title", "title_ko"), ("summary", "summary_ko")):
            if not data.get(english) and not data.get(korean) and english not in self.errors:
                self.add_error(english, _("Write it in English or in Korean (or both)."))
        chosen, example = data.get("try_capability"), data.get("example_input")
        if chosen and example and not CAPABILITIES[chosen].input_serializer(data=example).is_valid():
            self.add_error(
                "example_input", _("This example is not a valid input for %(capability)s.") % {"capability": chosen}
            )
        return data


def _json_object(raw: str, not_an_object: str) -> dict:
    """A form field's JSON object ({} when blank), parsed within the platform's bounds."""
    raw = raw.strip()
    if not raw:
        return {}
    try:
        value = json_loads_bounded(raw)
    except JsonRefused as exc:
        raise forms.ValidationError(str(exc)) from None
    if not isinstance(value, dict):
        raise forms.ValidationError(not_an_object)
    return value
