"""The names of the default models the catalogue offers; the registry (inference.registry) says how each loads."""

LLM = "smollm2-135m-instruct"
QWEN = "qwen2.5-coder-0.5b-instruct"  # the stronger offline language model (inference.backends.llm.qwen)
EMBEDDER = "all-MiniLM-L6-v2"
