"""The names of the default models the catalogue offers; the registry (inference.registry) says how each loads."""

LLM = "smollm2-135m-instruct"
EMBEDDER = "all-MiniLM-L6-v2"
