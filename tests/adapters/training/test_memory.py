"""The peak-memory estimate: parameter counts against real models, the measured GPU figures it was checked against,
and the line between a job that fits and one that does not."""

from __future__ import annotations

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from adapters.training.common import LoraSettings
from adapters.training.memory import GIB, ModelShape, estimate

ALL = LoraSettings().target_modules
# Hub configs, as their config.json states them
LLAMA_1B = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
            "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": True}  # fmt: skip
LLAMA_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}  # fmt: skip
QWEN_05B = {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
            "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True}  # fmt: skip


@pytest.mark.parametrize("tied", [True, False])
def test_the_parameter_count_is_the_models_own(tied):
    config = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=300, tie_word_embeddings=tied)  # fmt: skip
    model = LlamaForCausalLM(config)
    assert ModelShape.from_config(config).parameters == sum(p.numel() for p in model.parameters())


def test_the_adapter_is_counted_as_peft_counts_it():
    from peft import get_peft_model

    config = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=300)  # fmt: skip
    lora = LoraSettings(rank=8, target_modules=("q_proj", "v_proj", "down_proj"))
    wrapped = get_peft_model(LlamaForCausalLM(config), lora.peft_config())
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    found = estimate(ModelShape.from_config(config), 8, lora.target_modules, 1, 16, "transformers", gpu=True)
    assert found.adapter_gib * GIB == pytest.approx(trainable * 16)


@pytest.mark.parametrize(("config", "billions"), [(LLAMA_1B, 1.236), (LLAMA_8B, 8.030), (QWEN_05B, 0.494)])
def test_known_model_sizes(config, billions):
    # Qwen's attention biases (a few hundred thousand) are not counted: within half a percent
    assert ModelShape.from_config(config).parameters / 1e9 == pytest.approx(billions, rel=0.005)


@pytest.mark.parametrize(
    ("backend", "length", "measured"),
    [("transformers", 1024, 29.1), ("transformers", 2048, 56.7), ("unsloth", 1024, 4.9), ("unsloth", 2048, 4.9)],
)
def test_the_measured_peaks_on_an_h100(backend, length, measured):
    """A Llama-3.2-1B-shaped model, r16 on every linear layer, batch 8 (peak GPU memory in GiB, measured)."""
    found = estimate(ModelShape.from_config(LLAMA_1B), 16, ALL, 8, length, backend, gpu=True)
    assert found.total_gib == pytest.approx(measured, rel=0.05)


def test_a_job_that_cannot_fit_is_refused_with_what_to_change_and_one_that_can_is_not():
    eight = ModelShape.from_config(LLAMA_8B)
    plain = estimate(eight, 16, ALL, 8, 2048, "transformers", gpu=True)
    refused = plain.problem(80.0)
    assert refused and "only 80.0 GiB of GPU memory is free" in refused
    assert "lower the batch size or the maximum sequence length" in refused and "Unsloth" in refused
    assert estimate(eight, 16, ALL, 8, 2048, "unsloth", gpu=True).problem(80.0) is None  # 15 GiB weights + one layer
    assert estimate(eight, 16, ALL, 1, 512, "transformers", gpu=True).problem(80.0) is None
    one = ModelShape.from_config(LLAMA_1B)
    assert estimate(one, 16, ALL, 8, 1024, "transformers", gpu=True).problem(40.0) is None  # 29.3 of 36.8 usable
    assert estimate(one, 16, ALL, 8, 2048, "transformers", gpu=True).problem(40.0)
    on_cpu = estimate(one, 16, ALL, 8, 1024, "transformers", gpu=False)
    assert on_cpu.weights_gib == pytest.approx(2 * estimate(one, 16, ALL, 8, 1024, "transformers", True).weights_gib)
    assert "CPU memory" in (on_cpu.problem(24.0) or "")


# ---- the quick preset sized for a GPU ------------------------------------------------------------------------------


def _sized(monkeypatch, free_gib: float, gpu: bool, backend: str = "transformers", **kept):
    from adapters.training import memory
    from adapters.training.train import job_settings

    monkeypatch.setattr(memory, "free_memory_gib", lambda device: (free_gib, gpu))
    return job_settings("quick demo", None, kept, LlamaConfig(**LLAMA_1B), backend, None)


def test_on_a_large_gpu_the_quick_preset_takes_long_sequences_and_the_largest_batch_that_fits(monkeypatch):
    _, fit, note = _sized(monkeypatch, 139.0, gpu=True)
    assert (fit.batch_size, fit.max_seq_length) == (32, 1024)
    assert "batches of 32" in note and "1024 tokens" in note and "139.0 GiB free" in note
    _, fit, _ = _sized(monkeypatch, 40.0, gpu=True)  # 1B at 1024 tokens: ~29 GiB at batch 8, ~57 at 16
    assert (fit.batch_size, fit.max_seq_length) == (8, 1024)
    _, fit, _ = _sized(monkeypatch, 40.0, gpu=True, backend="unsloth")  # one layer's activations at a time
    assert fit.batch_size == 32


def test_the_quick_preset_stays_as_it_is_on_a_cpu_a_small_gpu_or_where_the_user_chose(monkeypatch):
    from adapters.training.train import QUICK_DEMO

    quick = QUICK_DEMO[1]
    for free, gpu in ((200.0, False), (4.0, True)):
        _, fit, note = _sized(monkeypatch, free, gpu)
        assert fit == quick and note == ""
    _, fit, _ = _sized(monkeypatch, 139.0, gpu=True, batch_size=4)
    assert (fit.batch_size, fit.max_seq_length) == (4, 1024)  # the user's batch, the GPU's length
    _, fit, note = _sized(monkeypatch, 139.0, gpu=True, batch_size=4, max_seq_length=128)
    assert (fit.batch_size, fit.max_seq_length, note) == (4, 128, "")


def test_a_small_models_estimate_is_said_in_mib_not_as_zero_gib():
    from adapters.training.memory import MemoryEstimate

    small = MemoryEstimate(0.004, 0.0005, 0.02, "transformers", "CPU").describe()
    assert small == (
        "about 25.1 MiB at peak on the CPU (4.1 MiB weights, 0.5 MiB adapter and optimizer, 20.5 MiB activations; "
        "transformers)"
    )
    assert MemoryEstimate(15.0, 0.25, 2.0, "unsloth", "GPU").describe().startswith("about 17.2 GiB at peak on the GPU")
