"""Hugging Face Spaces entry point: `python app.py` serves the playground on the Space's port."""

import os

from playground.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main(["serve", "--host", "0.0.0.0", "--port", os.environ.get("PORT", "7860")]))
