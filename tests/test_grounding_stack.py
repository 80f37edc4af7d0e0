"""The trained scorer's stacker forms (grounding.stacker): what each reads and how it combines it."""

from __future__ import annotations

import numpy as np
import pytest

from ragops.answer.cross_encoder import CE_FEATURES
from ragops.answer.grounding_fit import fit_stacker
from ragops.answer.scorers import STACK_FORMS, stack_features, stack_inputs
from ragops.errors import ConfigError


def inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=(40, 2))  # top-1 and top-k: (SUPPORT, CONTRADICT, NEI) each
    ce = np.column_stack([probs[:, 0, 0], probs[:, 0, 1], probs[:, 1, 0], probs[:, 1, 1]])
    assert CE_FEATURES == ("ce_top1_support", "ce_top1_contradict", "ce_topk_support", "ce_topk_contradict")
    return stack_inputs(rng.uniform(0.01, 0.99, 40), ce)


def test_the_sum_form_reads_the_logit_and_the_top_k_log_odds() -> None:
    x = inputs()
    assert np.array_equal(stack_features(x, "logistic"), x)
    f = stack_features(x, "sum")
    assert f.shape == (40, 2) and np.array_equal(f[:, 0], x[:, 0])
    np.testing.assert_allclose(f[:, 1], np.log(x[:, 3] + 1e-6) - np.log(x[:, 4] + 1e-6))
    with pytest.raises(ConfigError, match="unknown grounding.stacker 'max'"):
        stack_features(x, "max")
    assert STACK_FORMS == ("sum", "logistic")


def test_the_sum_stacker_adds_standardized_columns_with_the_weight() -> None:
    f = stack_features(inputs(), "sum")
    y = f[:, 1] > np.median(f[:, 1])
    for weight in (0.5, 2.0):
        model = fit_stacker("sum", f, y, weight, seed=0)
        z = (f - f.mean(axis=0)) / f.std(axis=0)
        np.testing.assert_allclose(model.predict(f), 1 / (1 + np.exp(-(z[:, 0] + weight * z[:, 1]))))
    # the logistic form is fit (its weights are learnt, the given one unused)
    fitted = fit_stacker("logistic", f, y, 123.0, seed=0)
    assert fitted.coef[1] > 0 and fitted.coef[1] != 123.0
