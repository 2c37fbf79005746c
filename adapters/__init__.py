"""Models: the one engine that owns the base model and its LoRA adapters, plus training.

Nothing here imports Gradio or Haystack.
"""
