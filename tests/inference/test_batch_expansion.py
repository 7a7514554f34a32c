"""`n` results per job and embeddings, on the real models through run_batch (the worker's path)."""

from __future__ import annotations

import numpy as np

from inference.backends import run_batch


def test_a_job_asking_for_n_images_gets_n_seeded_choices():
    params = {"width": 64, "height": 64, "steps": 2, "seed": 5, "n": 2}
    [output] = run_batch("image_generation", "alliance-pattern-artist", [{"prompt": "honeycomb"}], [params])
    assert [choice["seed"] for choice in output["choices"]] == [5, 6]
    first, second = (np.asarray(choice["image"]) for choice in output["choices"])
    assert first.shape == second.shape == (64, 64, 3) and not np.array_equal(first, second)
    assert output["image"] is output["choices"][0]["image"]


def test_embeddings_of_a_batch_come_back_per_job_normalised():
    outputs = run_batch(
        "embeddings",
        "all-MiniLM-L6-v2",
        [{"texts": ["a bank", "a river bank"]}, {"texts": ["a bank"]}],
        [{}, {}],
    )
    assert [len(output["embeddings"]) for output in outputs] == [2, 1]
    vectors = np.asarray(outputs[0]["embeddings"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(outputs[1]["embeddings"][0], outputs[0]["embeddings"][0], atol=1e-5)
