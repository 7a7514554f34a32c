"""Writes for showcases: drafts by partners, and the review workflow draft -> in review -> published / rejected."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from inference.services import model_check
from partners.models import Partner
from partners.services import actor_for, audit_record
from usecases import recipes
from usecases.images import prepare_showcase_image
from usecases.models import UseCase, UseCaseImage, UseCaseStatus

EDITABLE_FIELDS = (
    "title",
    "sector",
    "capabilities",
    "summary",
    "story",
    "results",
    "example_input",
    "try_capability",
    "recipe",
)
EDITABLE_FIELDS += ("title_ko", "summary_ko", "story_ko")  # the Korean texts (UseCase.in_language)
EDITABLE_STATUSES = (UseCaseStatus.DRAFT, UseCaseStatus.REJECTED)


class UseCaseTransitionError(ValueError):
    """The showcase is not in a state that allows this step (someone else moved it first, or it is done)."""


def recipe_validate(*, partner: Partner, recipe: Any) -> dict[str, Any]:
    """The recipe checked for this partner (its capabilities, and models it may use: the registry's or its own
    tuned ones) and normalised; RecipeInvalid (param `recipe...`) otherwise."""
    return recipes.recipe_check(
        recipe, model_check=lambda capability, model: model_check(partner=partner, capability=capability, model=model)
    )


def _unique_slug(title: str) -> str:
    base = slugify(title)[:180] or "showcase"
    slug, n = base, 2
    while UseCase.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def usecase_create(*, partner: Partner, user: AbstractBaseUser, **fields: Any) -> UseCase:
    data = {name: fields[name] for name in EDITABLE_FIELDS if name in fields}
    if "recipe" in data:
        data["recipe"] = recipe_validate(partner=partner, recipe=data["recipe"])
    usecase = UseCase.objects.create(
        partner=partner, slug=_unique_slug(data.get("title") or data.get("title_ko", "")), **data
    )
    audit_record(partner=partner, actor=actor_for(user=user), action="usecase.created", target=usecase.slug)
    return usecase


@transaction.atomic
def usecase_update(*, usecase: UseCase, user: AbstractBaseUser, **fields: Any) -> UseCase:
    if usecase.status not in EDITABLE_STATUSES:
        raise UseCaseTransitionError(f"A showcase that is {usecase.get_status_display().lower()} cannot be edited.")
    if "recipe" in fields:
        fields = {**fields, "recipe": recipe_validate(partner=usecase.partner, recipe=fields["recipe"])}
    changed = [name for name in EDITABLE_FIELDS if name in fields and getattr(usecase, name) != fields[name]]
    for name in changed:
        setattr(usecase, name, fields[name])
    usecase.save()
    audit_record(
        partner=usecase.partner,
        actor=actor_for(user=user),
        action="usecase.updated",
        target=usecase.slug,
        data={"fields": changed},
    )
    return usecase


def usecase_image_add(
    *, usecase: UseCase, user: AbstractBaseUser | None, image: File, caption: str = ""
) -> UseCaseImage:
    """A picture for the showcase: checked (PNG/JPEG/WebP by content, bytes and pixels bounded), re-encoded without
    its metadata and stored under a random name. InvalidInput / TooLarge (param `image`) for anything else."""
    prepared = prepare_showcase_image(image)  # decoding and encoding happen outside the transaction
    with transaction.atomic():
        position = usecase.images.count()
        stored = ContentFile(prepared.data, name=prepared.filename)
        added = UseCaseImage.objects.create(usecase=usecase, image=stored, caption=caption, position=position)
        audit_record(
            partner=usecase.partner,
            actor=actor_for(user=user),
            action="usecase.image_added",
            target=usecase.slug,
            data={"format": prepared.format, "width": prepared.width, "height": prepared.height},
        )
    return added


def _transition(usecase: UseCase, *, from_statuses: tuple[str, ...], to: str, **changes: Any) -> UseCase:
    """One conditional UPDATE: two reviewers (or a reviewer and an editor) cannot both move the same showcase."""
    moved = UseCase.objects.filter(pk=usecase.pk, status__in=from_statuses).update(
        status=to, updated_at=timezone.now(), **changes
    )
    usecase.refresh_from_db()
    if not moved:
        raise UseCaseTransitionError(f"The showcase is {usecase.get_status_display().lower()}; it cannot go to {to}.")
    return usecase


@transaction.atomic
def usecase_submit(*, usecase: UseCase, user: AbstractBaseUser) -> UseCase:
    usecase = _transition(
        usecase,
        from_statuses=EDITABLE_STATUSES,
        to=UseCaseStatus.IN_REVIEW,
        submitted_by=user,
        submitted_at=timezone.now(),
        rejection_reason="",
    )
    audit_record(partner=usecase.partner, actor=actor_for(user=user), action="usecase.submitted", target=usecase.slug)
    return usecase


@transaction.atomic
def usecase_approve(*, usecase: UseCase, reviewer: AbstractBaseUser) -> UseCase:
    now = timezone.now()
    usecase = _transition(
        usecase,
        from_statuses=(UseCaseStatus.IN_REVIEW,),
        to=UseCaseStatus.PUBLISHED,
        reviewed_by=reviewer,
        reviewed_at=now,
        published_at=now,
        rejection_reason="",
    )
    audit_record(
        partner=usecase.partner, actor=actor_for(user=reviewer), action="usecase.published", target=usecase.slug
    )
    return usecase


@transaction.atomic
def usecase_reject(*, usecase: UseCase, reviewer: AbstractBaseUser, reason: str) -> UseCase:
    reason = reason.strip()
    if not reason:
        raise UseCaseTransitionError("A rejection needs a reason the partner can act on.")
    usecase = _transition(
        usecase,
        from_statuses=(UseCaseStatus.IN_REVIEW,),
        to=UseCaseStatus.REJECTED,
        reviewed_by=reviewer,
        reviewed_at=timezone.now(),
        rejection_reason=reason,
    )
    audit_record(
        partner=usecase.partner,
        actor=actor_for(user=reviewer),
        action="usecase.rejected",
        target=usecase.slug,
        data={"reason": reason},
    )
    return usecase


@transaction.atomic
def usecase_unpublish(*, usecase: UseCase, reviewer: AbstractBaseUser) -> UseCase:
    usecase = _transition(usecase, from_statuses=(UseCaseStatus.PUBLISHED,), to=UseCaseStatus.DRAFT, featured=False)
    audit_record(
        partner=usecase.partner, actor=actor_for(user=reviewer), action="usecase.unpublished", target=usecase.slug
    )
    return usecase
