"""How far silver judgments can be trusted: rank systems by nDCG@10 on generated (silver) questions and on
SciFact's gold judgments, and compare the two rankings (Kendall's tau).

Silver questions come from the **offline** generator (``ragops.eval.silver``; no model), one per document, for a
seeded sample of SciFact documents: those judged relevant in the gold split plus as many random others. The
systems are every mode the build carries and parameter variants of them (fusion alpha 0.2 / 0.8, RRF, no
dense feedback; BM25 with Lucene's default k1/b, without stemming): each ranks the gold split's queries and
the silver questions; ``ragops.eval.metrics`` scores both (its nDCG is checked against pytrec_eval).

The generator's own knobs (sentence selection, share of words kept, their weighting) are compared on the
**dev** split and chosen there (the best tau); test reports. Also measured: a bootstrap interval of tau
(queries resampled), the system pairs the two rankings disagree on with the gold difference and its paired
p-value, and a leakage check (how much of one document sentence a question copies, next to the same
figure for SciFact's own test queries).

    python bench/silver_tau.py [--root .] [--modes bm25,dense,hybrid] [--max-judged N] [--no-write]

Needs a built project (`dvc repro`). Writes reports/bench/silver_tau.json and the `silver_tau` section of
docs/benchmarks.md (not with --max-judged or --modes: a development run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from _common import machine, machine_line, write_result, write_section

# The a-priori setting (the first one written; OfflineConfig's defaults may since have moved to the dev choice),
# and variants of it: each a full config, so a row keeps its meaning when the library's defaults change.
BASE = {"select": "centroid", "keep": 0.6, "weighting": "idf", "form": "keywords", "max_terms": 10}
VARIANTS = {
    "a-priori": BASE,
    "select=idf": {**BASE, "select": "idf"},
    "select=title": {**BASE, "select": "title"},
    "weighting=uniform": {**BASE, "weighting": "uniform"},
    "weighting=inverse": {**BASE, "weighting": "inverse"},
    "keep=0.4": {**BASE, "keep": 0.4},
    "keep=0.3 max_terms=6 inverse": {**BASE, "keep": 0.3, "max_terms": 6, "weighting": "inverse"},
    "keep=0.8": {**BASE, "keep": 0.8},
    "fluent": {**BASE, "form": "fluent"},
    "fluent keep=0.4 inverse": {**BASE, "form": "fluent", "keep": 0.4, "weighting": "inverse"},
    "fluent keep=0.8": {**BASE, "form": "fluent", "keep": 0.8},
    "keep=1.0 (all content words)": {**BASE, "keep": 1.0, "max_terms": 40},
}
CONTRASTS = {"keep=1.0 (all content words)"}  # shown for comparison, never chosen: nearly the sentence itself
MAX_VERBATIM = 0.05  # a variant whose questions repeat >80% of a sentence more often than this is not chosen


def systems(pipeline, params: dict, docs: pd.DataFrame) -> list[tuple[str, object, str]]:
    """(name, pipeline, mode): every carried mode, then parameter variants of hybrid and BM25."""
    from ragops.retrieval.index.sparse import BM25Config, BM25Index
    from ragops.retrieval.retriever import FusionConfig

    out = [(m, pipeline, m) for m in pipeline.modes]
    if "hybrid" in pipeline.modes:
        f = pipeline.base.fusion
        for name, fusion in (("hybrid alpha=0.2", replace(f, alpha=0.2)), ("hybrid alpha=0.8", replace(f, alpha=0.8)),
                             ("hybrid rrf", FusionConfig(method="rrf", rrf_k=f.rrf_k)),
                             ("hybrid no-prf", replace(f, prf_docs=0, prf_beta=0.0))):
            out.append((name, replace(pipeline, base=replace(pipeline.base, fusion=fusion)), "hybrid"))
    cfg = BM25Config.from_params(params["index"]["bm25"])
    if cfg.unit == "doc":  # re-indexing the documents takes seconds; chunks would take longer
        texts = (docs["title"] + "\n" + docs["text"]).tolist()
        for name, variant in (("bm25 k1=1.2 b=0.75", replace(cfg, k1=1.2, b=0.75)),
                              ("bm25 no-stem", replace(cfg, stemmer="none"))):
            index = BM25Index.build(docs["doc_id"].tolist(), texts, variant)
            out.append((name, replace(pipeline, base=replace(pipeline.base, bm25=index)), "bm25"))
    return out


def scores(system_list, qids: list[str], texts: list[str], qrels: dict) -> np.ndarray:
    """[system, query] nDCG@10 (queries in ``qids`` order)."""
    from ragops.eval.evaluation import as_run
    from ragops.eval.metrics import per_query

    out = np.zeros((len(system_list), len(qids)))
    for i, (_, pipe, mode) in enumerate(system_list):
        pq = per_query(qrels, as_run(qids, pipe.search_batch(texts, mode, 10)), ["ndcg@10"])
        out[i] = [pq[q]["ndcg@10"] for q in qids]
    return out


def kendall(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import kendalltau

    res = kendalltau(a, b)
    return float(res.statistic), float(res.pvalue)


def bootstrap_tau(silver: np.ndarray, gold: np.ndarray, n: int, seed: int) -> list[float]:
    """95% interval of tau with the silver and the gold queries resampled independently."""
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n):
        s = silver[:, rng.integers(0, silver.shape[1], silver.shape[1])].mean(1)
        g = gold[:, rng.integers(0, gold.shape[1], gold.shape[1])].mean(1)
        taus.append(kendall(s, g)[0])
    return [round(float(np.nanpercentile(taus, 2.5)), 3), round(float(np.nanpercentile(taus, 97.5)), 3)]


def split_data(params: dict, split: str, max_judged: int | None) -> tuple[list[str], list[str], dict]:
    from ragops.eval.evaluation import qrels_for_split

    qrels = qrels_for_split(pd.read_parquet(params["paths"]["qrels"]), split)
    text = pd.read_parquet(params["paths"]["queries"]).set_index("query_id")["text"]
    qids = sorted(q for q, j in qrels.items() if any(g > 0 for g in j.values()))
    if max_judged:
        qids = sorted(random.Random(0).sample(qids, min(max_judged, len(qids))))
    return qids, [str(text[q]) for q in qids], {q: qrels[q] for q in qids}


def silver_docs(docs: pd.DataFrame, gold: dict, seed: int) -> pd.DataFrame:
    """The documents judged relevant in ``gold`` plus as many seeded random others, in file order."""
    judged = {d for j in gold.values() for d, g in j.items() if g > 0}
    others = sorted(set(docs["doc_id"]) - judged)
    pick = judged | set(random.Random(seed).sample(others, min(len(judged), len(others))))
    return docs[docs["doc_id"].isin(pick)].reset_index(drop=True)


def leakage(pairs: list[tuple[str, str]], docs: pd.DataFrame) -> dict:
    """Shares of questions whose words come >80% from one sentence of a relevant document, and that repeat
    >80% of that sentence's words (a near-verbatim copy); ``pairs`` = (question, relevant doc id)."""
    from ragops.eval.silver import copy_overlap

    by_id = docs.set_index("doc_id")
    best: dict[str, tuple[float, float]] = {}
    for q, d in pairs:
        best[q] = max(best.get(q, (0.0, 0.0)), copy_overlap(q, by_id.at[d, "title"], by_id.at[d, "text"]))
    share = np.asarray([v[0] for v in best.values()])
    cover = np.asarray([v[1] for v in best.values()])
    return {"questions": len(best), "words_from_one_sentence_gt_0.8": round(float(np.mean(share > 0.8)), 3),
            "copies_gt_0.8_of_a_sentence": round(float(np.mean(cover > 0.8)), 3),
            "mean_words_from_one_sentence": round(float(share.mean()), 3),
            "mean_sentence_copied": round(float(cover.mean()), 3)}


def run_split(split: str, system_list, params, docs, idf, args) -> dict:
    """Gold scores once, then each generator variant's silver scores and tau on ``split``."""
    from ragops.eval.silver import OfflineConfig, as_qrels, generate_offline

    qids, texts, gold = split_data(params, split, args.max_judged)
    t0 = time.perf_counter()
    gold_s = scores(system_list, qids, texts, gold)
    sample = silver_docs(docs, gold, int(params["seed"]))
    out = {"gold_queries": len(qids), "silver_docs": len(sample), "gold_seconds": round(time.perf_counter() - t0, 1),
           "gold": {n: round(float(v), 4) for (n, _, _), v in zip(system_list, gold_s.mean(1), strict=True)},
           "all_systems_perfect": round(float(np.mean(gold_s.min(0) == 1.0)), 3),
           "gold_leakage": leakage([(texts[i], d) for i, q in enumerate(qids) for d in gold[q]], docs),
           "variants": {}, "_gold_scores": gold_s}
    for name in args.variants:
        cfg = OfflineConfig(**VARIANTS.get(name, {}))
        if name == "anthropic":  # needs ANTHROPIC_API_KEY; a failed document falls back to offline (by: offline)
            from ragops.eval.silver_anthropic import anthropic_config, generate_anthropic

            rows = generate_anthropic(sample, 1, int(params["seed"]), anthropic_config(params), idf, cfg)
        else:
            rows = generate_offline(sample, 1, int(params["seed"]), idf, cfg)
        stexts, sqrels = as_qrels(rows)
        sq = sorted(sqrels)
        silver_s = scores(system_list, sq, [stexts[q] for q in sq], sqrels)
        tau, p = kendall(silver_s.mean(1), gold_s.mean(1))
        out["variants"][name] = {
            "config": asdict(cfg), "questions": len(sq), "tau": round(tau, 3), "p": round(p, 4),
            "all_systems_perfect": round(float(np.mean(silver_s.min(0) == 1.0)), 3),
            "silver": {n: round(float(v), 4) for (n, _, _), v in zip(system_list, silver_s.mean(1), strict=True)},
            "leakage": leakage([(r["query"], r["doc_id"]) for r in rows], docs),
            "by": dict(Counter(r["by"] for r in rows)),
            "examples": [r["query"] for r in rows[:3]], "_silver_scores": silver_s}
        print(f"{split} {name}: tau {tau:.3f} (p {p:.4f}) over {len(system_list)} systems, {len(sq)} questions",
              flush=True)
    return out


def pairs(names: list[str], silver: np.ndarray, gold: np.ndarray, seed: int) -> tuple[list[dict], dict]:
    """(the system pairs silver and gold order differently, largest gold difference first; agreement on the
    pairs whose gold difference is significant, paired randomization test p < 0.05)."""
    from ragops.eval.metrics import paired_test

    s, g = silver.mean(1), gold.mean(1)
    out, sig, agree = [], 0, 0
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            p = paired_test(dict(enumerate(gold[i])), dict(enumerate(gold[j])), n_resamples=2000, seed=seed)["p_value"]
            same = (s[i] - s[j]) * (g[i] - g[j]) > 0
            if p < 0.05:
                sig, agree = sig + 1, agree + int(same)
            if (s[i] - s[j]) * (g[i] - g[j]) < 0:
                out.append({"a": names[i], "b": names[j], "gold_diff": round(float(g[i] - g[j]), 4),
                            "silver_diff": round(float(s[i] - s[j]), 4), "gold_p": round(p, 4)})
    n = len(names) * (len(names) - 1) // 2
    return sorted(out, key=lambda d: -abs(d["gold_diff"])), {"pairs": n, "gold_significant": sig,
                                                              "silver_agrees_on_significant": agree}


def gold_vs_gold(splits: dict, args, seed: int) -> dict | None:
    """Tau between the systems' gold means on the selection split and on the report split (two sets of real
    questions), with a bootstrap interval: the agreement any question set of this size can be expected to reach."""
    if args.select_split == args.split:
        return None
    a, b = splits[args.select_split]["_gold_scores"], splits[args.split]["_gold_scores"]
    tau, p = kendall(a.mean(1), b.mean(1))
    return {"tau": round(tau, 3), "p": round(p, 4), "interval": bootstrap_tau(a, b, args.bootstrap, seed)}


def ranks(values: dict[str, float]) -> dict[str, int]:
    return {n: r + 1 for r, n in enumerate(sorted(values, key=lambda n: -values[n]))}


def render(res: dict) -> str:
    test, chosen = res["splits"][res["report_split"]], res["chosen"]
    v = test["variants"][chosen]
    gr, sr = ranks(test["gold"]), ranks(v["silver"])
    rows = "\n".join(f"| {n} | {test['gold'][n]:.3f} | {gr[n]} | {v['silver'][n]:.3f} | {sr[n]} |"
                     for n in sorted(test["gold"], key=lambda n: gr[n]))
    var = "\n".join(
        f"| {name} | " + " | ".join(f"{res['splits'][s]['variants'][name]['tau']:.3f}" for s in res["splits"])
        + f" | {test['variants'][name]['leakage']['copies_gt_0.8_of_a_sentence']:.1%} |"
        for name in test["variants"])
    dis = "\n".join(f"| {d['a']} vs {d['b']} | {d['gold_diff']:+.4f} | {d['gold_p']:.3f} | {d['silver_diff']:+.4f} |"
                    for d in res["disagreements"][:10]) or "| (none) | | | |"
    gl, sl, sp = test["gold_leakage"], v["leakage"], res["significant_pairs"]
    cfg = ", ".join(f"{k}={val}" for k, val in v["config"].items())
    gg = res["gold_vs_gold"]
    generator = ("the **offline** generator (`ragops.eval.silver`, no model)" if chosen != "anthropic" else
                 "the **anthropic** generator (" + ", ".join(f"{k}: {n}" for k, n in v["by"].items()) + ")")
    ceiling = "" if gg is None else (
        f"For scale, the same systems ranked by two sets of real claims, gold {res['select_split']} against gold "
        f"{res['report_split']}: tau = {gg['tau']:.3f} ({gg['interval']}): what two sets of real questions "
        "agree on (dev was used for tuning, so its tuned systems are favoured there).")
    def gain(ft: str, base: str) -> str:
        if ft not in test["gold"] or base not in test["gold"]:
            return ""
        return (f"; {ft} over {base}: gold {test['gold'][ft] - test['gold'][base]:+.3f}, "
                f"silver {v['silver'][ft] - v['silver'][base]:+.3f}")

    why = (f"Why: silver ranks bm25 {sr.get('bm25', '-')} of {len(sr)} (gold: {gr.get('bm25', '-')}) and hybrid "
           f"alpha=0.2 {sr.get('hybrid alpha=0.2', '-')} (gold: {gr.get('hybrid alpha=0.2', '-')})"
           f"{gain('dense_ft', 'dense')}{gain('hybrid_ft', 'hybrid')}: questions made of one document's own words "
           "reward lexical matching, and what fine-tuning on SciFact's claims taught hardly shows on them.")
    return f"""## Silver judgments: how far generated questions rank systems like gold judgments

`python bench/silver_tau.py` on the full SciFact build. {machine_line(res['machine'])}
Silver questions: {generator}, one per document, for
{test['silver_docs']} documents ({res['report_split']}: those judged relevant plus as many seeded random others);
{v['questions']} questions, each judged relevant to its own document only. Gold: SciFact's {res['report_split']}
split ({test['gold_queries']} queries). {len(test['gold'])} systems (the build's modes and parameter variants),
nDCG@10 from `ragops.eval.metrics`. Generator settings chosen on **dev** (best tau among the variants with at most
{MAX_VERBATIM:.0%} near-verbatim questions): `{chosen}` ({cfg}).

**Kendall's tau ({res['report_split']}) = {v['tau']:.3f}** (p = {v['p']:.4f}; 95% bootstrap interval over queries
{res['tau_interval']}). {ceiling}

| system | gold nDCG@10 | gold rank | silver nDCG@10 | silver rank |
|---|---|---|---|---|
{rows}

Generator variants (tau on each split; the choice reads dev only; last column: questions that repeat
more than 80% of one document sentence's words on {res['report_split']}):

| variant | {' | '.join(f'tau {s}' for s in res['splits'])} | near-verbatim |
|---|{'---|' * len(res['splits'])}---|
{var}

Of the {sp['pairs']} system pairs, {sp['gold_significant']} differ significantly on gold (paired randomization test,
p < 0.05); silver orders {sp['silver_agrees_on_significant']} of them the same way.
Saturation: every system puts the source document first for {v['all_systems_perfect']:.0%} of the silver questions
(gold: every system scores 1.0 on {test['all_systems_perfect']:.0%} of the queries).

Pairs the two rankings order differently ({res['report_split']}, `{chosen}`), largest gold difference first, with
the gold difference's paired randomization p-value:

| pair | gold diff | gold p | silver diff |
|---|---|---|---|
{dis}

{why} What to try next (not measured here: this
machine has no key and no network): questions in other words than the document's, from the `anthropic` generator
(`python bench/silver_tau.py --variants anthropic` with ANTHROPIC_API_KEY set), and more than one judged document
per question. Until then the offline silver set checks that a pipeline works end to end; it does not rank systems.

Leakage check: {sl['words_from_one_sentence_gt_0.8']:.1%} of the silver questions take more than 80% of their
words from one sentence of their document (by construction: keywords of one sentence) and
{sl['copies_gt_0.8_of_a_sentence']:.1%} repeat more than 80% of that sentence (mean {sl['mean_sentence_copied']:.2f});
SciFact's own {res['report_split']} queries against their judged documents: {gl['words_from_one_sentence_gt_0.8']:.1%}
and {gl['copies_gt_0.8_of_a_sentence']:.1%} (mean {gl['mean_sentence_copied']:.2f}).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="a built ragops project")
    ap.add_argument("--modes", default=None, help="comma-separated modes (default: every mode the build carries)")
    ap.add_argument("--max-judged", type=int, default=None, help="a sample of gold queries (development runs)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="generator variants to compare, or "
                    "`anthropic` (Claude writes the questions: needs ANTHROPIC_API_KEY, one request a document)")
    ap.add_argument("--select-split", default="dev")
    ap.add_argument("--split", default="test")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--render", action="store_true", help="only re-render the docs section from the saved JSON")
    args = ap.parse_args()
    if args.render:
        from _common import BENCH_DIR

        write_section("silver_tau", render(json.loads((BENCH_DIR / "silver_tau.json").read_text())))
        return
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    os.chdir(args.root)
    from ragops.config import load_params
    from ragops.eval.silver import idf_table
    from ragops.retrieval.load import load_pipeline
    from ragops.serving.cache import QueryCache

    params = load_params()
    modes = args.modes.split(",") if args.modes else None
    pipeline, docs = load_pipeline(params, modes)
    pipeline = pipeline.map_encoders(lambda enc: QueryCache(enc, 1_000_000))  # variants share query vectors
    docs = docs.astype({"doc_id": str, "title": str, "text": str})
    idf = idf_table(docs["title"] + " " + docs["text"])
    t0 = time.perf_counter()
    system_list = systems(pipeline, params, docs)
    names = [n for n, _, _ in system_list]
    splits = {s: run_split(s, system_list, params, docs, idf, args) for s in dict.fromkeys([args.select_split,
                                                                                            args.split])}
    sel = splits[args.select_split]["variants"]
    eligible = [n for n in sel if n not in CONTRASTS
                and sel[n]["leakage"]["copies_gt_0.8_of_a_sentence"] <= MAX_VERBATIM]
    chosen = max(eligible, key=lambda n: (sel[n]["tau"], n == "a-priori"))
    rep = splits[args.split]
    silver_s, gold_s = rep["variants"][chosen]["_silver_scores"], rep["_gold_scores"]
    disagree, significant = pairs(names, silver_s, gold_s, int(params["seed"]))
    res = {"machine": machine(), "systems": names, "report_split": args.split, "select_split": args.select_split,
           "chosen": chosen, "tau_interval": bootstrap_tau(silver_s, gold_s, args.bootstrap, int(params["seed"])),
           "disagreements": disagree, "significant_pairs": significant,
           "gold_vs_gold": gold_vs_gold(splits, args, int(params["seed"])),
           "seconds": round(time.perf_counter() - t0, 1), "splits": splits, "modes": list(pipeline.modes),
           "development_run": bool(args.max_judged or args.modes)}
    for s in splits.values():  # the per-query arrays stay out of the JSON
        s.pop("_gold_scores")
        for v in s["variants"].values():
            v.pop("_silver_scores")
    print(json.dumps({k: v for k, v in res.items() if k != "machine"}, indent=1))
    if not args.no_write and not res["development_run"]:
        write_result("silver_tau", res)
        write_section("silver_tau", render(res))
    else:
        print(render(res))


if __name__ == "__main__":
    main()
