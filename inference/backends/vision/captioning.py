"""Offline image captioning: EfficientNet-Lite0 names the subject, YOLOv3-tiny counts objects, a template joins them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from inference.backends.vision.darknet import Detection, Detector, detect_objects, load_yolov3_tiny
from inference.backends.vision.efficientnet import (
    EfficientNetLite0,
    ImageNetClasses,
    imagenet_classes,
    load_efficientnet_lite0,
    predict_probabilities,
)

TOP_LABELS = 3
CONFIDENT = 0.4  # a classifier label this sure is worth naming even when the detector did not see it
MAX_SUBJECTS = 3
READABLE_COCO = {
    "aeroplane": "airplane",
    "motorbike": "motorbike",
    "sofa": "sofa",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv monitor",
}
IRREGULAR_PLURALS = {
    "person": "people",
    "mouse": "mice",
    "knife": "knives",
    "sheep": "sheep",
    "skis": "skis",
    "scissors": "scissors",
    "broccoli": "broccoli",
    "fish": "fish",
    "goose": "geese",
}
NUMBERS = ("no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# ImageNet-1k classes that are a finer name for a COCO category (inclusive index ranges).
IMAGENET_TO_COCO: dict[str, tuple[tuple[int, int], ...]] = {
    "bird": ((7, 24), (80, 100), (127, 146)),
    "dog": ((151, 268),),
    "cat": ((281, 285),),
    "bear": ((294, 297),),
    "horse": ((339, 339), (603, 603)),
    "zebra": ((340, 340),),
    "cow": ((345, 347),),
    "sheep": ((348, 349),),
    "elephant": ((101, 101), (385, 386)),
    "car": (
        (436, 436),
        (468, 468),
        (511, 511),
        (609, 609),
        (627, 627),
        (656, 656),
        (661, 661),
        (751, 751),
        (817, 817),
        (407, 407),
    ),
    "truck": ((555, 555), (569, 569), (675, 675), (717, 717), (734, 734), (864, 864), (867, 867)),
    "bus": ((654, 654), (779, 779), (874, 874)),
    "train": ((466, 466), (547, 547), (565, 565), (820, 820), (829, 829)),
    "aeroplane": ((404, 404), (726, 726), (895, 895)),
    "boat": (
        (472, 472),
        (484, 484),
        (510, 510),
        (554, 554),
        (576, 576),
        (625, 625),
        (628, 628),
        (724, 724),
        (780, 780),
        (814, 814),
        (871, 871),
        (914, 914),
    ),
    "bicycle": ((444, 444), (671, 671)),
    "motorbike": ((665, 665), (670, 670)),
    "cup": ((504, 504), (647, 647), (967, 968)),
    "bottle": ((440, 440), (720, 720), (737, 737), (898, 898), (907, 907)),
    "wine glass": ((441, 441), (966, 966)),
    "chair": ((423, 423), (559, 559), (765, 765)),
    "sofa": ((831, 831),),
    "diningtable": ((532, 532),),
    "tvmonitor": ((664, 664), (782, 782), (851, 851)),
    "laptop": ((620, 620),),
    "mouse": ((673, 673),),
    "keyboard": ((508, 508),),
    "cell phone": ((487, 487),),
    "clock": ((409, 409), (530, 530), (892, 892)),
    "sports ball": ((429, 430), (522, 522), (574, 574), (722, 722), (768, 768), (805, 805), (852, 852)),
    "umbrella": ((879, 879),),
    "backpack": ((414, 414),),
    "tie": ((451, 451), (457, 457), (906, 906)),
    "bench": ((703, 703),),
    "vase": ((883, 883),),
    "teddy bear": ((850, 850),),
    "pizza": ((963, 963),),
    "banana": ((954, 954),),
    "orange": ((950, 950),),
    "broccoli": ((937, 937),),
    "hot dog": ((934, 934),),
    "bowl": ((659, 659), (809, 809)),
    "refrigerator": ((760, 760),),
    "microwave": ((651, 651),),
    "toaster": ((859, 859),),
    "traffic light": ((920, 920),),
    "parking meter": ((704, 704),),
    "tennis racket": ((752, 752),),
    "kite": ((21, 21),),
}


@dataclass
class Captioner:
    classifier: EfficientNetLite0
    detector: Detector
    classes: ImageNetClasses


@dataclass(frozen=True)
class Subject:
    noun: str
    count: int


def load_captioner(device: str = "cpu") -> Captioner:
    return Captioner(load_efficientnet_lite0(device), load_yolov3_tiny(device), imagenet_classes())


def coco_category(imagenet_index: int) -> str | None:
    for category, ranges in IMAGENET_TO_COCO.items():
        if any(low <= imagenet_index <= high for low, high in ranges):
            return category
    return None


def with_article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last in IRREGULAR_PLURALS:
        last = IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def counted(subject: Subject) -> str:
    if subject.count == 1:
        return with_article(subject.noun)
    number = NUMBERS[subject.count] if subject.count < len(NUMBERS) else "many"
    return f"{number} {plural(subject.noun)}"


def join_words(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def compose_caption(top_phrase: str, top_score: float, top_category: str | None, objects: list[Detection]) -> str:
    """The detector's objects with counts; the classifier's label renames the category it refines (cat -> tabby cat),
    is added when it is confident and names a category the detector missed, follows "with" when it is confident
    and names something COCO lacks, and is the whole caption when nothing was detected."""
    counts = Counter(detection.label for detection in objects)  # ordered by each label's best score
    subjects = [Subject(READABLE_COCO.get(label, label), count) for label, count in counts.items()]
    if not subjects:
        return f"a photo of {with_article(top_phrase)}"
    extra = ""
    if top_category in counts:
        index = list(counts).index(top_category)
        subjects[index] = Subject(top_phrase, subjects[index].count)
    elif top_score >= CONFIDENT and top_category is not None:
        subjects.insert(0, Subject(top_phrase, 1))
    elif top_score >= CONFIDENT:
        extra = f" with {with_article(top_phrase)}"
    return f"a photo of {join_words([counted(subject) for subject in subjects[:MAX_SUBJECTS]])}{extra}"


def describe(captioner: Captioner, probabilities: torch.Tensor, objects: list[Detection]) -> dict[str, Any]:
    scores, indices = probabilities.topk(TOP_LABELS)
    top = int(indices[0])
    caption = compose_caption(captioner.classes.phrases[top], float(scores[0]), coco_category(top), objects)
    return {
        "caption": caption,
        "labels": [
            {"label": captioner.classes.names[int(index)], "score": round(float(score), 4)}
            for score, index in zip(scores, indices, strict=True)
        ],
        "objects": [
            {"label": READABLE_COCO.get(d.label, d.label), "score": d.score, "box": list(d.box)} for d in objects
        ],
    }


def run_image_captioning(captioner: Captioner, inputs: list[dict], params: list[dict]) -> list[dict[str, Any]]:
    """Captions a batch: inputs are {"image": PIL.Image} (RGB); params may set "min_object_score" per image."""
    images: list[Image.Image] = [item["image"].convert("RGB") for item in inputs]
    probabilities = predict_probabilities(captioner.classifier, images)
    detections = detect_objects(captioner.detector, images)
    results = []
    for row, objects, options in zip(probabilities, detections, params, strict=True):
        threshold = float(options.get("min_object_score", 0.0))
        results.append(describe(captioner, row, [d for d in objects if d.score >= threshold]))
    return results
