"""Render reports/grounding.json and reports/rag.json (written by `dvc repro`) as the tables of
docs/grounding.md (between `<!-- grounding-table:start -->` and `<!-- grounding-table:end -->`).

    python bench/grounding_table.py [--root PROJECT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ORDER = ("lexical_baseline", "lexical", "embedding", "trained")


def table(grounding: dict, rag: dict | None) -> str:
    rows = [
        "| scorer | AUROC | AUROC SUPPORT vs CONTRADICT | AUROC SUPPORT vs NEI | F1 | threshold (train) |",
        "|---|---|---|---|---|---|",
    ]
    for name in ORDER:
        m = grounding["scorers"].get(name)
        if m:
            rows.append(
                f"| {name} | {m['auroc']:.3f} | {m['auroc_support_vs_contradict']:.3f} | "
                f"{m['auroc_support_vs_nei']:.3f} | {m['f1']:.3f} | {m['threshold']:.3f} |"
            )
    for name, m in grounding.get("diagnostics", {}).items():  # the trained scorer's parts, alone
        rows.append(
            f"| *{name.replace('_', ' ')}* | {m['auroc']:.3f} | {m['auroc_support_vs_contradict']:.3f} | "
            f"{m['auroc_support_vs_nei']:.3f} | {m['f1']:.3f} | {m['threshold']:.3f} |"
        )
    cv = grounding.get("train", {}).get("trained", {})
    secs = grounding.get("seconds", {})
    out = "\n".join(rows) + (
        f"\n\nclaims_dev, {grounding.get('n_test_pairs')} pairs; trained on {grounding.get('n_train_pairs')} "
        f"train pairs ({grounding.get('n_train_rows')} rows with the negated copies), C = {cv.get('C')} "
        f"(cross-validated AUROC on train {cv.get('cv_auroc')}); the stage took {secs.get('total')} s, "
        f"{secs.get('trained_fit')} s of it fitting the trained scorer (features included)."
    )
    if "stack_cv_auroc" in cv:
        ce = cv.get("cross_encoder", {})
        out += (
            f" The cross-encoder{' (from the grounding_pretrain model)' if grounding.get('pretrained') else ''} "
            f"trained {len(ce.get('epoch_loss', []))} epochs on {ce.get('examples')} examples "
            f"from {ce.get('train_pairs')} train pairs in {ce.get('seconds')} s; on the {cv['stack_pairs']} "
            f"held-out train pairs the stacked scorer's cross-validated AUROC is {cv['stack_cv_auroc']} "
            f"({cv['stack_cv_auroc_support_vs_contradict']} SUPPORT vs CONTRADICT), the logistic model's "
            f"{cv['logistic_oof_auroc_same_pairs']}."
        )
    if rag:
        out += (
            f"\n\nRAG on the {rag['n_queries']} SciFact {rag['split']} queries (extractive generator, "
            f"{rag['scorer']} scorer): citation precision {rag['citation_precision']:.3f} "
            f"(macro {rag['citation_precision_macro']:.3f}), mean support rate {rag['support_rate']:.3f}, "
            f"{rag['claims_per_answer']:.1f} claims per answer."
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = ap.parse_args()
    grounding = json.loads((args.root / "reports" / "grounding.json").read_text())
    rag_path = args.root / "reports" / "rag.json"
    rag = json.loads(rag_path.read_text()) if rag_path.exists() else None
    doc = Path(__file__).resolve().parents[1] / "docs" / "grounding.md"
    text = doc.read_text()
    start, end = "<!-- grounding-table:start -->", "<!-- grounding-table:end -->"
    text = text[: text.index(start) + len(start)] + "\n" + table(grounding, rag) + "\n" + text[text.index(end) :]
    doc.write_text(text)
    print(table(grounding, rag))


if __name__ == "__main__":
    main()
