"""Training data (no dev/test leak, never a positive as negative), rerank ordering, the no-train fallback.

The leak test builds the training examples from the real prepared SciFact data: the only way from
qrels into training is ``train_positives``, and it must see the train split alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ragops.data.prepare import prepare_dataset
from ragops.retrieval.records import Hits
from ragops.retrieval.rerank import rerank_hits
from ragops.training.artifacts import effective_embedder, effective_reranker, is_trained, training_record
from ragops.training.data import batches, build_examples, interleave, mine_negatives, train_positives


def hits(*ids: str) -> Hits:
    return Hits(list(ids), np.arange(len(ids), 0, -1, dtype=np.float64))


@pytest.fixture(scope="module")
def scifact(mirror: Path):
    return prepare_dataset(mirror, dev_fraction=0.2, seed=42, max_docs=0)


def test_no_dev_or_test_query_or_judgment_reaches_training(scifact) -> None:
    qrels = scifact.qrels
    held_out = set(qrels.loc[qrels["split"].isin(["dev", "test"]), "query_id"])
    assert len(held_out) > 400  # SciFact: 300 test + ~160 dev queries
    positives = train_positives(qrels)
    assert positives and not set(positives) & held_out
    train_pairs = set(
        zip(
            qrels.loc[qrels["split"] == "train", "query_id"],
            qrels.loc[qrels["split"] == "train", "doc_id"],
            strict=True,
        )
    )
    assert {(q, d) for q, ds in positives.items() for d in ds} == train_pairs
    # Whatever dev/test say, the training examples are the same: dropping or scrambling them changes nothing.
    scrambled = qrels.copy()
    held = scrambled["split"].isin(["dev", "test"])
    scrambled.loc[held, "doc_id"] = scrambled.loc[held, "doc_id"].sample(frac=1.0, random_state=0).to_numpy()
    assert train_positives(scrambled) == positives == train_positives(qrels[~held])
    # Candidate lists made of every document: a held-out query never becomes an example.
    docs = scifact.docs["doc_id"].tolist()
    runs = {q: [Hits(docs[:50], np.zeros(50))] for q in positives}
    examples = build_examples(positives, runs, n_negatives=3, skip_top=0, pool=30, seed=1)
    assert len(examples) == len(train_pairs)  # each (query, positive) once
    assert not {ex.query_id for ex in examples} & held_out
    assert all(
        ex.positive in positives[ex.query_id] and not set(ex.negatives) & positives[ex.query_id] for ex in examples
    )


def test_mine_negatives_skips_top_never_positive_and_is_seeded() -> None:
    dense, bm25 = hits("p", "a", "b", "c", "d", "e"), hits("b", "p", "f", "g", "h", "a")
    rng = np.random.default_rng(0)
    want = ("b", "a", "f", "c", "g", "d", "h", "e")  # rank by rank, dense first; p is positive
    assert mine_negatives({"p"}, [dense, bm25], n=10, skip_top=0, pool=100, rng=rng) == want
    # skip_top=2 drops ranks 1-2 of each run (p, a, b) before interleaving
    assert mine_negatives({"p"}, [dense, bm25], n=10, skip_top=2, pool=100, rng=rng) == (
        "b",
        "f",
        "c",
        "g",
        "d",
        "h",
        "e",
        "a",
    )
    picks = [mine_negatives({"p"}, [dense, bm25], 2, 0, 4, np.random.default_rng(7)) for _ in range(2)]
    assert picks[0] == picks[1] and len(picks[0]) == 2 and set(picks[0]) <= {"a", "b", "c", "f"}
    assert interleave([dense, bm25], 4) == ["p", "b", "a", "f"]


def test_batches_cover_every_example_once() -> None:
    got = batches(10, 4, np.random.default_rng(3))
    assert [len(b) for b in got] == [4, 4, 2] and sorted(np.concatenate(got).tolist()) == list(range(10))


def test_length_grouped_batches_pad_less_and_still_give_every_example_once_an_epoch() -> None:
    """grounding.cross_encoder.group_by_length: each epoch still holds every example once, in as many batches
    as random slices would, in a seeded order that changes from epoch to epoch; within a window, a batch holds
    examples of alike length, so it pads to far fewer tokens than a random 16 does."""
    import random

    from ragops.training.batching import epoch_batches

    lengths = [random.Random(i).choice([20, 40, 80, 128]) for i in range(1000)]

    def padded(bs: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) for b in bs)

    runs = {}
    for group in (False, True):
        order, rng = list(range(1000)), random.Random(5)
        runs[group] = [epoch_batches(order, lengths, 16, rng, group) for _ in range(2)]
        for epoch in runs[group]:
            assert len(epoch) == 63 and sorted(i for b in epoch for i in b) == list(range(1000))
        assert runs[group][0] != runs[group][1]  # each epoch its own order
        again = list(range(1000))
        assert epoch_batches(again, lengths, 16, random.Random(5), group) == runs[group][0]  # seeded
    assert all(len({lengths[i] for i in b}) <= 2 for b in runs[True][0])  # alike lengths (a run's border: 2)
    assert padded(runs[True][0]) < 0.75 * padded(runs[False][0])
    # the short batch of a run sits anywhere, not always last; a window larger than the data sorts it all
    assert [len(b) for b in runs[True][0]].index(8) != 62 or [len(b) for b in runs[True][1]].index(8) != 62
    whole = epoch_batches(list(range(1000)), lengths, 16, random.Random(5), True, window=1000)
    assert sum(len({lengths[i] for i in b}) > 1 for b in whole) <= 3


def test_the_trainings_optimizer_is_the_fused_adamw_where_the_device_has_it(monkeypatch) -> None:
    import torch

    from ragops.encode.models import adamw

    model = torch.nn.Linear(4, 2)
    opt = adamw([{"params": [model.weight], "lr": 1e-3}, {"params": [model.bias], "lr": 1e-2}], 1e-3)
    assert opt.defaults["fused"] is True and opt.defaults["weight_decay"] == 0.01
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-2]
    # where torch refuses the fused kernel (a device without it), the plain loop over the same groups, though
    # they came from generators that the refused attempt had already read
    real = torch.optim.AdamW

    def refusing(*args, fused=None, **kwargs):
        if fused:
            list(args[0][0]["params"])
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", refusing)
    fallback = adamw(({"params": model.parameters(), "lr": 1e-3} for _ in range(1)), 1e-3)
    assert not fallback.defaults["fused"] and len(fallback.param_groups[0]["params"]) == 2


def test_rerank_reorders_the_top_n_only() -> None:
    first = hits("a", "b", "c", "d", "e")
    out = rerank_hits(first, np.array([0.1, 0.9, 0.5]))
    assert out.ids == ["b", "c", "a", "d", "e"]
    assert np.all(np.diff(out.scores) < 0)  # strictly ranked, tail below the reranked block
    assert rerank_hits(first, np.array([0.1, 0.9, 0.5]), weight=0.0).ids == first.ids  # weight 0: first stage
    # interpolation: a small cross-encoder margin does not overturn a large first-stage one
    first = Hits(["a", "b", "c"], np.array([10.0, 1.0, 0.0]))
    assert rerank_hits(first, np.array([0.0, 0.1, -5.0]), weight=0.5).ids == ["a", "b", "c"]
    assert rerank_hits(first, np.array([0.0, 0.1, -5.0]), weight=1.0).ids == ["b", "a", "c"]


def test_no_train_judgments_writes_markers_and_falls_back(tmp_path: Path) -> None:
    from ragops.stages import train_embedder, train_reranker

    qrels = pd.DataFrame({"query_id": ["q1"], "doc_id": ["d1"], "score": [1], "split": ["test"]})
    qrels.to_parquet(tmp_path / "qrels.parquet")
    params = {
        "seed": 1,
        "embed": {"model": "all-MiniLM-L6-v2"},
        "paths": {
            "qrels": str(tmp_path / "qrels.parquet"),
            "embedder": str(tmp_path / "embedder"),
            "reranker": str(tmp_path / "reranker"),
        },
        "train": {"embedder": {"enabled": True}, "reranker": {"enabled": True}},
    }
    train_embedder.main(params)
    train_reranker.main(params)
    for key in ("embedder", "reranker"):
        assert not is_trained(params["paths"][key])
        assert training_record(params["paths"][key])["reason"] == "no train judgments in the dataset"
    assert effective_embedder(params) == "all-MiniLM-L6-v2" and effective_reranker(params) is None
    qrels.assign(split="train").to_parquet(tmp_path / "qrels.parquet")
    params["train"]["embedder"]["enabled"] = False
    train_embedder.main(params)
    assert training_record(params["paths"]["embedder"])["reason"].startswith("disabled")


def test_a_training_device_the_machine_lacks_stops_before_any_work(tmp_path: Path, monkeypatch) -> None:
    """train.<model>.device: a CUDA device where torch sees none is a clear error naming the key, raised before
    the stage reads the corpus or loads a model (the paths below do not exist); the CPU passes."""
    import torch

    from ragops.encode.models import checked_device
    from ragops.errors import ConfigError
    from ragops.stages import train_embedder, train_reranker

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    pd.DataFrame({"query_id": ["q1"], "doc_id": ["d1"], "score": [1], "split": ["train"]}).to_parquet(
        tmp_path / "qrels.parquet")
    pd.DataFrame({"query_id": ["q1"], "text": ["a question"]}).to_parquet(tmp_path / "queries.parquet")
    paths = {name: str(tmp_path / name) for name in ("embedder", "reranker", "chunks", "docs", "embeddings")}
    params = {
        "seed": 1, "embed": {"model": "all-MiniLM-L6-v2"}, "train": {"retrain": "always"},
        "paths": {**paths, "qrels": str(tmp_path / "qrels.parquet"), "queries": str(tmp_path / "queries.parquet")},
    }
    for name, stage in (("embedder", train_embedder), ("reranker", train_reranker)):
        params["train"][name] = {"enabled": True, "device": "cuda:0", "precision": "auto"}
        with pytest.raises(ConfigError, match=rf"^train\.{name}\.device is 'cuda:0' but torch sees no CUDA device$"):
            stage.main(params)
        assert not (tmp_path / name).exists()
    assert checked_device("cpu", "train.embedder.device") == "cpu"


def test_precision_auto_is_bf16_only_where_the_device_multiplies_it_natively(monkeypatch) -> None:
    """train.<model>.precision / grounding.cross_encoder.precision: fp32 and bf16 as given; auto is bf16 on a CPU
    with AVX512-BF16 or AMX (torch's own probes) and on a CUDA GPU that supports it, fp32 anywhere else."""
    import torch

    from ragops.encode.models import training_precision

    assert (training_precision("fp32", "cpu"), training_precision("bf16", "cpu")) == ("fp32", "bf16")
    for avx512_bf16, amx in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert training_precision("auto", "cpu") == ("bf16" if avx512_bf16 or amx else "fp32")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_precision("auto", "cuda:0") == training_precision("auto", "mps") == "fp32"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_runs_in_its_precision_and_keeps_fp32_weights(precision: str) -> None:
    """bf16 is mixed precision: the encoder's matrix products run in bf16 (seen by a hook on a linear layer),
    the weights and what the optimizer updates stay fp32; fp32 never sees a bf16 tensor."""
    import torch

    from ragops.encode.models import load_sentence_transformer
    from ragops.training.embedder import TrainConfig, train_bi_encoder

    model = load_sentence_transformer("all-MiniLM-L6-v2")
    model.max_seq_length = 32
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen: list = []
    query_layer = model[0].auto_model.encoder.layer[0].attention.self.query
    query_layer.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    queries = ["vitamin d and bone density", "statins lower cholesterol", "sleep and memory", "aspirin and stroke"]
    docs = ["Vitamin D supplements raise bone density.", "Statins reduce LDL cholesterol.",
            "Sleep consolidates memory.", "Aspirin lowers the risk of stroke."]
    negs = [[docs[(i + 1) % 4]] for i in range(4)]
    ids = [[f"d{i}", f"d{(i + 1) % 4}"] for i in range(4)]
    result = train_bi_encoder(model, queries, docs, negs, [{f"d{i}"} for i in range(4)], ids,
                              TrainConfig(epochs=1, batch_size=2, max_steps=1, lr=1e-4, precision=precision))
    assert result.steps == 1 and result.precision == precision
    assert set(seen) == {torch.bfloat16 if precision == "bf16" else torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


def test_dropouts_are_set_on_every_module_of_their_kind_and_a_model_without_attention_is_an_error() -> None:
    """train.*.attention_dropout reaches the dropout of each of the MiniLM's six attention layers (and only those),
    hidden_dropout every other one (the embeddings', each layer's two outputs', a classification head's); null
    leaves the model's own; a model with no attention to set stops with the key's name instead of training as if
    it had been set."""
    import torch

    from ragops.encode.models import load_sentence_transformer, resolve_model, set_dropout
    from ragops.errors import ConfigError
    from ragops.training.reranker import init_cross_encoder

    model = load_sentence_transformer("all-MiniLM-L6-v2")
    bert = model[0].auto_model
    assert set_dropout(model, None, None, "k") == (0, 0)
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    assert set_dropout(model, 0.0, None, "k") == (len(bert.encoder.layer), 0) == (6, 0)
    assert {layer.attention.self.dropout.p for layer in bert.encoder.layer} == {0.0}
    assert {layer.output.dropout.p for layer in bert.encoder.layer} | {bert.embeddings.dropout.p} == {0.1}
    assert set_dropout(model, None, 0.05, "k") == (0, 1 + 2 * 6)
    assert {layer.attention.self.dropout.p for layer in bert.encoder.layer} == {0.0}  # left as it was
    assert {m.p for layer in bert.encoder.layer for m in (layer.output.dropout, layer.attention.output.dropout)
            } | {bert.embeddings.dropout.p} == {0.05}  # fmt: skip
    reranker, _ = init_cross_encoder(resolve_model("all-MiniLM-L6-v2"), seed=1, layers=4)
    assert set_dropout(reranker, 0.0, 0.0, "train.reranker") == (4, 1 + 2 * 4 + 1)  # the head's dropout too
    assert {m.p for m in reranker.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    with pytest.raises(ConfigError, match=r"^train\.embedder\.attention_dropout is 0\.0 but the model has no"):
        set_dropout(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1)), 0.0, None, "train.embedder")
    assert set_dropout(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1)), None, 0.0, "k") == (0, 1)


def test_passages_in_length_sorted_groups_give_the_vectors_of_one_padded_forward() -> None:
    """mnrl_step's passages run in length-sorted groups (PASSAGE_GROUP), each padded to its own longest: every
    group is trimmed to its longest row, no row is lost or repeated, and the vectors put back in input order are
    those of one forward over all (padding is masked), to float rounding."""
    import torch

    from ragops.encode.models import load_sentence_transformer
    from ragops.training.embedder import by_length, inverse_order

    model = load_sentence_transformer("all-MiniLM-L6-v2").eval()
    texts = [" ".join(["word"] * n) + f" {i}" for i, n in enumerate([3, 40, 1, 17, 90, 5, 60, 2, 33, 8])]
    feats = model.preprocess(texts)
    parts = by_length(feats, 4)
    assert [len(p["input_ids"]) for p in parts] == [4, 4, 2]
    widths = [p["input_ids"].shape[1] for p in parts]
    assert widths == sorted(widths) and widths[-1] == feats["input_ids"].shape[1] > widths[0]
    assert all(int(p["attention_mask"].sum(dim=1).max()) == p["input_ids"].shape[1] for p in parts)
    with torch.no_grad():
        whole = model(dict(feats))["sentence_embedding"]
        grouped = torch.cat([model(p)["sentence_embedding"] for p in parts])[inverse_order(feats)]
    assert torch.allclose(whole, grouped, atol=1e-5)
    assert not torch.allclose(whole, torch.cat([model(p)["sentence_embedding"] for p in parts]), atol=1e-3)


def test_pool_score_ranks_each_pool_by_its_best_chunk() -> None:
    """The embedder's dev score (rerank_pool_score): a document scores by its closest chunk (MaxP), only
    the pool's documents count, and the metric is computed over the ranked pools."""
    from ragops.training.embedder import rerank_pool_score

    vec = {"q": [1.0, 0.0], "a1": [0.1, 1.0], "a2": [0.9, 0.1], "b1": [0.5, 0.5], "c1": [1.0, 0.0]}

    def encode(texts: list[str]) -> np.ndarray:
        v = np.asarray([vec[t] for t in texts], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    chunks = {"a": ["a1", "a2"], "b": ["b1"], "c": ["c1"]}
    # a's best chunk (a2) beats b: a relevant document first -> nDCG@1 1; c (closest of all) is outside the pool
    assert rerank_pool_score(encode, ["q"], [["b", "a"]], chunks, {"1": {"a": 1}}, ["1"], "ndcg@1") == 1.0
    assert rerank_pool_score(encode, ["q"], [["b", "a"]], chunks, {"1": {"b": 1}}, ["1"], "ndcg@1") == 0.0
    assert rerank_pool_score(encode, ["q"], [["b", "a", "c"]], chunks, {"1": {"a": 1}}, ["1"], "ndcg@1") == 0.0


@pytest.fixture(scope="module")
def minilm():
    """The packaged MiniLM, for tests that only encode with it (never train it)."""
    from ragops.encode.models import load_sentence_transformer

    return load_sentence_transformer("all-MiniLM-L6-v2")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_embedders_dev_score_encodes_in_the_trainings_precision(precision: str, tmp_path: Path, minilm) -> None:
    """train_embedder's dev scorer re-encodes the dev pools with the model under the training's precision (bf16:
    the products in bf16, seen by a hook), and bf16 ranks the pools as fp32 does; the untrained score comes from
    the vectors on disk, not the model."""
    import torch

    from ragops.stages.train_embedder import dev_scorer

    docs = {"a": ["Vitamin D supplements raise bone density in older women.", "The trial ran for two years."],
            "b": ["Statins reduce LDL cholesterol."], "c": ["Sleep consolidates memory in adolescents."]}
    chunks = pd.DataFrame([(d, t) for d, texts in docs.items() for t in texts], columns=["doc_id", "text"])
    qrels = pd.DataFrame({"query_id": ["1", "2"], "doc_id": ["a", "c"], "score": [1, 1], "split": ["dev", "dev"]})
    qrels.to_parquet(tmp_path / "qrels.parquet")
    text_of = pd.Series({"1": "does vitamin d help bones", "2": "sleep and memory"})
    vecs = np.eye(len(chunks), 4, dtype=np.float32)  # the base vectors on disk: chunk i = e_i

    class Base:  # the base retrievers: both lists rank b, a, c for every query
        def components(self, texts):
            return [[hits("b", "a", "c")] * len(texts)] * 2

        def encode(self, texts):
            # closest to c's chunk (e_3), then to a's first (e_0), orthogonal to b's: c, a, b
            return np.tile(np.asarray([[0.5, 0.0, 0.0, 1.0]], dtype=np.float32), (len(texts), 1))

    params = {"paths": {"qrels": str(tmp_path / "qrels.parquet")}}
    score, untrained = dev_scorer(params, Base(), text_of, chunks, vecs, 3, precision)
    assert untrained == pytest.approx((1 / np.log2(3) + 1.0) / 2)  # query 1's a second, query 2's c first
    seen: list = []
    hook = minilm[0].auto_model.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda _m, _i, out: seen.append(out.dtype))
    try:
        assert score(minilm) == 1.0  # the real model puts each query's document first
    finally:
        hook.remove()
    assert set(seen) == {torch.bfloat16 if precision == "bf16" else torch.float32}
