from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from alliance.api.parsers import JsonRefused, json_loads_bounded
from alliance.errors import DomainError
from capabilities import CAPABILITIES, CAPABILITY_NAMES
from inference import tuning_config
from inference.models import DatasetTask, JobStatus
from partners.models import Role, Sector
from partners.scopes import CAPABILITY_SCOPES, RESOURCE_SCOPES
from usecases.images import check_showcase_image

CAPABILITY_CHOICES = [(name, name) for name in CAPABILITY_NAMES]
CAPABILITY_LABELS = [(name, name.replace("_", " ").capitalize()) for name in CAPABILITY_NAMES]


SCOPE_GROUPS = (
    ("Capabilities", [(name, name) for name in CAPABILITY_SCOPES]),
    ("Resources", [(scope, f"{scope}: {meaning}") for scope, meaning in RESOURCE_SCOPES.items()]),
)


class ApiKeyIssueForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the key is for, e.g. 'production chatbot'.")
    scopes = forms.MultipleChoiceField(
        choices=SCOPE_GROUPS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=(
            "None ticked: the key may do everything. Otherwise exactly what is ticked: the capabilities it may "
            "call, and the resources it may read or change (jobs:read shows only jobs of its capabilities)."
        ),
    )
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        min_value=1,
        max_value=3650,
        required=False,
        help_text="Empty: the key does not expire.",
    )

    def scope_groups(self) -> list[tuple[str, list]]:
        """The scope checkboxes in their groups, for the template."""
        boxes = {box.data["value"]: box for box in self["scopes"].subwidgets}
        return [(label, [boxes[value] for value, _ in choices]) for label, choices in SCOPE_GROUPS]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name.startswith("playground:"):
            raise forms.ValidationError("Names starting with 'playground:' are reserved for the playground.")
        return name


class ApiKeyRotateForm(forms.Form):
    grace_hours = forms.IntegerField(
        label="Old secret valid for (hours)", min_value=0, max_value=168, initial=24, required=False
    )


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status"), *JobStatus.choices], required=False)
    capability = forms.ChoiceField(choices=[("", "Any capability"), *CAPABILITY_CHOICES], required=False)


class UsageFilterForm(forms.Form):
    capability = forms.ChoiceField(choices=[("", "All capabilities"), *CAPABILITY_CHOICES], required=False)


class InviteForm(forms.Form):
    email = forms.EmailField(
        help_text="We email a link; the person joins when they accept it (signing up there if they are new)."
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class InvitationSignUpForm(forms.Form):
    """A new account from an invitation: its email is the invited address, not a field."""

    username = forms.CharField(max_length=150, help_text="Letters, digits and @/./+/-/_ only.")
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not a common password.",
    )
    password2 = forms.CharField(
        label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
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
            self.add_error("password2", "The two passwords differ.")
        elif first and "username" in data:
            try:
                validate_password(first, get_user_model()(username=data["username"], email=self.email))
            except ValidationError as exc:
                self.add_error("password1", exc.messages)
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        label="Data file",
        help_text="JSONL or CSV. Classification: text, label. Generation: prompt, completion. Chat: JSONL messages.",
    )
    task = forms.ChoiceField(choices=DatasetTask.choices, initial=DatasetTask.CLASSIFICATION)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.ALLIANCE_DATASET_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size} bytes; the limit is {settings.ALLIANCE_DATASET_MAX_BYTES}."
            )
        return upload


class TuningStartForm(forms.Form):
    dataset = forms.ChoiceField(choices=())
    method = forms.ChoiceField(
        choices=[(name, name) for name in tuning_config.METHODS],
        initial="default",
        help_text="default: the task's recommended recipe; or a parameter-efficient method (LoRA, IA3, prompt or "
        "p-tuning).",
    )
    epochs = forms.IntegerField(
        min_value=1, max_value=20, required=False, help_text="Empty: the task's default number of epochs."
    )

    def __init__(self, *args, datasets=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [
            (d.public_id, f"{d.filename} · {d.task} · {d.stats.get('rows', 0)} rows ({d.public_id})") for d in datasets
        ]

    def hyperparameters(self) -> dict:
        epochs = self.cleaned_data.get("epochs")
        return {"epochs": epochs} if epochs else {}


class UseCaseForm(forms.Form):
    """What a partner writes about a showcase; the review fields are the operators' alone."""

    title = forms.CharField(max_length=200)
    sector = forms.ChoiceField(choices=Sector.choices)
    capabilities = forms.MultipleChoiceField(
        choices=CAPABILITY_LABELS, widget=forms.CheckboxSelectMultiple, help_text="The capabilities it uses."
    )
    summary = forms.CharField(max_length=300, help_text="One or two sentences for the gallery card.")
    story = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)
    results = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="One result a line.")
    try_capability = forms.ChoiceField(
        label="'Try it' capability",
        choices=[("", "The first that fits the example"), *CAPABILITY_LABELS],
        required=False,
    )
    example_input = forms.CharField(
        label="Example input (JSON)",
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        required=False,
        help_text='What "Try it" puts in the playground, e.g. {"text": "...", "top_k": 5}.',
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
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
        help_text="Optional: a picture of the result. PNG, JPEG or WebP, up to 8 MB and 16 megapixels; it is stored "
        "re-encoded, without its metadata.",
    )
    image_caption = forms.CharField(max_length=200, required=False)

    def clean_image(self):
        upload = self.cleaned_data.get("image")
        if upload:
            try:
                check_showcase_image(upload)
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from None
        return upload

    def clean_example_input(self) -> dict:
        raw = self.cleaned_data["example_input"].strip()
        if not raw:
            return {}
        try:
            value = json_loads_bounded(raw)
        except JsonRefused as exc:
            raise forms.ValidationError(str(exc)) from None
        if not isinstance(value, dict):
            raise forms.ValidationError("The example must be a JSON object.")
        return value

    def clean_recipe(self) -> dict:
        raw = self.cleaned_data["recipe"].strip()
        if not raw:
            return {}
        try:
            value = json_loads_bounded(raw)
        except JsonRefused as exc:
            raise forms.ValidationError(str(exc)) from None
        if not isinstance(value, dict):
            raise forms.ValidationError("A recipe is a JSON object with `inputs` and `steps`.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        chosen, example = data.get("try_capability"), data.get("example_input")
        if chosen and example and not CAPABILITIES[chosen].input_serializer(data=example).is_valid():
            self.add_error("example_input", f"This example is not a valid input for {chosen}.")
        return data
