"""Training a LoRA adapter: the backends registry, the Trainer loop every backend runs, settings and presets."""
