"""When should `ragops ask` / `/ask` say "not found in the documents"? Choose `answer.min_relevance` on dev.

The signal (``Answerer.relevance``): the max cosine between the question and a title or sentence of the first
`answer.relevance_docs` retrieved documents, with the served mode's query encoder. Answerable questions:
SciFact queries (each has a judged document in the corpus). Off-topic questions: FEVER claims
(`nli/fever_rte_dev/dev.raw.input1` of the mirror, hash-checked against its SHA256SUMS; general-knowledge
statements about films, people and places, none about SciFact's biomedical topics), a seeded sample split
in two halves. The threshold is chosen on **dev** (SciFact dev queries vs the first FEVER half): the largest
true-refusal minus false-refusal among thresholds whose dev false-refusal rate is at most --max-false;
it is reported on **test** (SciFact test queries: every refusal is a false one; the second FEVER half:
every answer is a false one), plus a few hand-written general questions.

    python bench/not_found.py [--n-fever 300] [--max-false 0.05] [--write]

Needs the built pipeline (`dvc repro`). Writes reports/bench/not_found.json and the `not_found` section of
docs/benchmarks.md; --write records the threshold in params.yaml (`answer.min_relevance`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, write_result, write_section  # noqa: E402

FEVER = "fever_rte_dev/dev.raw.input1"
GENERAL = [
    "What is the capital of France?",
    "Who won the football World Cup in 2018?",
    "How do I reset my router password?",
    "What is the tallest mountain in Europe?",
    "Who wrote the novel Pride and Prejudice?",
    "How many strings does a violin have?",
    "What year did the Berlin Wall fall?",
    "Which planet has the most moons?",
    "What is the best recipe for sourdough bread?",
    "Who is the lead singer of the band Coldplay?",
]


def fever_claims(mirror: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    from ragops.data.fetch import read_sums

    sums = read_sums(mirror / "SHA256SUMS", "nli")
    path = mirror / "nli" / FEVER
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sums[FEVER]:
        raise SystemExit(f"{path}: sha256 differs from {mirror / 'SHA256SUMS'}")
    claims = sorted({line.strip() for line in data.decode("utf-8").splitlines() if line.strip()})
    sample = random.Random(seed).sample(claims, min(2 * n, len(claims)))
    return sample[: len(sample) // 2], sample[len(sample) // 2:]


def rates(inside: np.ndarray, outside: np.ndarray, t: float) -> tuple[float, float]:
    """(false refusals among answerable, true refusals among off-topic) at threshold ``t``."""
    return float(np.mean(inside < t)), float(np.mean(outside < t))


def choose(inside: np.ndarray, outside: np.ndarray, max_false: float) -> float:
    candidates = np.unique(np.round(np.concatenate([inside, outside]), 3))
    best, best_gain = 0.0, -1.0
    for t in candidates:
        false_r, true_r = rates(inside, outside, float(t))
        if false_r <= max_false and true_r - false_r > best_gain:
            best, best_gain = float(t), true_r - false_r
    return best


def row(name: str, r: dict) -> str:
    return (f"| {name} (SciFact {name} {r['n_answerable']}, FEVER {r['n_off_topic']}) | {r['false_refusal']:.1%} | "
            f"{r['true_refusal']:.1%} | {r['auroc']:.3f} |")


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-fever", type=int, default=300, help="off-topic claims per half (dev, test)")
    ap.add_argument("--max-false", type=float, default=0.05, help="largest false-refusal rate allowed on dev")
    ap.add_argument("--mirror", default=os.environ.get("RAGOPS_MIRROR", "../shared/datasets"))
    ap.add_argument("--write", action="store_true", help="record the threshold in params.yaml")
    args = ap.parse_args()
    from ragops.answer.answerer import build_answerer
    from ragops.config import load_params
    from ragops.retrieval.load import load_pipeline
    from ragops.retrieval.tuning import write_block

    params = load_params()
    registry = Path(params["paths"]["registry"])
    mode = json.loads(registry.read_text()).get("served_mode", "hybrid") if registry.is_file() else "hybrid"
    pipeline, docs = load_pipeline(params, [mode])
    answerer = build_answerer(pipeline, docs, params, generator="extractive", mode=mode)
    queries = pd.read_parquet(params["paths"]["queries"])
    qrels = pd.read_parquet(params["paths"]["qrels"])
    text_of = dict(zip(queries["query_id"].astype(str), queries["text"], strict=True))

    def split(name: str) -> list[str]:
        return [text_of[q] for q in sorted(set(qrels[qrels["split"] == name]["query_id"].astype(str)))]

    fever_dev, fever_test = fever_claims(Path(args.mirror), args.n_fever, int(params["seed"]))
    t0 = time.perf_counter()

    def score(texts: list[str]) -> np.ndarray:
        return np.asarray([answerer.question_relevance(t) for t in texts])

    rel = {"scifact_dev": score(split("dev")), "fever_dev": score(fever_dev), "scifact_test": score(split("test")),
           "fever_test": score(fever_test), "general": score(GENERAL)}
    seconds = time.perf_counter() - t0
    t = choose(rel["scifact_dev"], rel["fever_dev"], args.max_false)
    dev_false, dev_true = rates(rel["scifact_dev"], rel["fever_dev"], t)
    test_false, test_true = rates(rel["scifact_test"], rel["fever_test"], t)
    result = {
        "machine": machine(), "mode": mode, "relevance_docs": answerer.cfg.relevance_docs, "threshold": t,
        "max_false_refusal_dev": args.max_false,
        "dev": {"false_refusal": round(dev_false, 4), "true_refusal": round(dev_true, 4),
                "n_answerable": len(rel["scifact_dev"]), "n_off_topic": len(rel["fever_dev"]),
                "auroc": round(auroc(rel["scifact_dev"], rel["fever_dev"]), 4)},
        "test": {"false_refusal": round(test_false, 4), "true_refusal": round(test_true, 4),
                 "n_answerable": len(rel["scifact_test"]), "n_off_topic": len(rel["fever_test"]),
                 "auroc": round(auroc(rel["scifact_test"], rel["fever_test"]), 4)},
        "general": [{"question": q, "relevance": round(float(r), 4), "refused": bool(r < t)}
                    for q, r in zip(GENERAL, rel["general"], strict=True)],
        "medians": {k: round(float(np.median(v)), 4) for k, v in rel.items()},
        "seconds_per_question": round(seconds / sum(len(v) for v in rel.values()), 4),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    write_result("not_found", result)
    refused = sum(g["refused"] for g in result["general"])
    d, s = result["dev"], result["test"]
    write_section("not_found", f"""## "Not found in the documents": `answer.min_relevance`

`python bench/not_found.py` (served mode `{mode}`): relevance = the max cosine between the question and a title
or sentence of the first {answerer.cfg.relevance_docs} retrieved documents. Answerable: SciFact queries;
off-topic: FEVER claims from the mirror's `nli/` (general knowledge, hash-checked), two seeded halves of
{args.n_fever}. Chosen on dev (false refusals at most {args.max_false:.0%}): **min_relevance = {t:.3f}**.

| split | answerable questions refused (false) | off-topic questions refused (true) | AUROC |
|---|---|---|---|
{row("dev", d)}
{row("test", s)}

Hand-written general questions ("What is the capital of France?", ...): {refused} of {len(GENERAL)} refused.
Median relevance: SciFact test {result['medians']['scifact_test']:.3f}, FEVER test
{result['medians']['fever_test']:.3f}, general {result['medians']['general']:.3f}. The check costs one encoder
pass over ~30 short texts per question (this run: {1000 * result['seconds_per_question']:.0f} ms per question,
retrieval included; `bench/ask.py` measures answer latency).

{machine_line(result["machine"])}""")
    if args.write:
        write_block("params.yaml", "answer", {"min_relevance": t}, "python bench/not_found.py --write")
        print(f"params.yaml: answer.min_relevance = {t}")


if __name__ == "__main__":
    main()
