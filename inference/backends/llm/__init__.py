"""Causal language models: `engine` loads a model and generates in batches, `runners` serve the text capabilities on
it, `text` holds the model-free text helpers those runners use, `smollm2` prepares the offline default model."""
