"""The names of the default models the catalogue offers; the registry (inference.registry) says how each loads."""

LLM = "smollm2-135m-instruct"
QWEN = "qwen2.5-coder-0.5b-instruct"  # the stronger offline language model (inference.backends.llm.qwen)
# The text capabilities' default: Qwen, chosen by bench/quality.py (README, "Model quality"); SmolLM2 stays the fast
# model a job can name, and the base of tuning.
EMBEDDER = "all-MiniLM-L6-v2"
