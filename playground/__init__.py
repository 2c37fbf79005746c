"""The RAG vs fine-tuning playground: Gradio page, services and CLI."""

import os

# A playground that runs offline sends no usage telemetry unless the user asks for it.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
