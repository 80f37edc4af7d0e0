"""ragops.retrieval.fusion: hand-worked convex and RRF cases, tie-breaks, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragops.errors import ConfigError
from ragops.retrieval.fusion import FUSION_METHODS, NORMALIZATIONS, convex, fuse, normalize, rrf
from ragops.retrieval.records import Hits


def hits(*pairs: tuple[str, float]) -> Hits:
    return Hits([i for i, _ in pairs], np.asarray([s for _, s in pairs], dtype=np.float64))


EMPTY = Hits([], np.asarray([], dtype=np.float64))


def test_normalize() -> None:
    s = np.asarray([1.0, 2.0, 3.0])
    assert normalize(s, "minmax").tolist() == [0.0, 0.5, 1.0]
    # population std of (1, 2, 3) = sqrt(2/3)
    z = 1 / math.sqrt(2 / 3)
    assert normalize(s, "zscore") == pytest.approx([-z, 0.0, z])
    assert normalize(np.asarray([4.0, 4.0]), "minmax").tolist() == [1.0, 1.0]
    assert normalize(np.asarray([4.0, 4.0]), "zscore").tolist() == [0.0, 0.0]
    out = normalize(s, "none")
    out[0] = 99.0
    assert s.tolist() == [1.0, 2.0, 3.0]  # a copy, never the input
    for method in NORMALIZATIONS:
        assert normalize(np.asarray([]), method).size == 0
    with pytest.raises(ConfigError, match="minmax, none, zscore"):
        normalize(s, "l2")


def test_rrf_hand_worked() -> None:
    r1 = hits(("a", 9.0), ("b", 8.0), ("c", 7.0))
    r2 = hits(("b", 0.3), ("c", 0.2), ("d", 0.1))
    out = rrf([r1, r2], k_rrf=60)
    # a: 1/61 = .016393; b: 1/62 + 1/61 = .032522; c: 1/63 + 1/62 = .032002; d: 1/63 = .015873
    assert out.ids == ["b", "c", "a", "d"]
    assert out.scores == pytest.approx([1 / 62 + 1 / 61, 1 / 63 + 1 / 62, 1 / 61, 1 / 63])
    # weights (2, 1): b 2/62 + 1/61 = .048651; c 2/63 + 1/62 = .047875; a 2/61 = .032787; d 1/63
    weighted = rrf([r1, r2], weights=[2.0, 1.0])
    assert weighted.as_dict()["a"] == pytest.approx(2 / 61)
    assert weighted.as_dict()["b"] == pytest.approx(2 / 62 + 1 / 61)
    assert weighted.ids == ["b", "c", "a", "d"]
    assert fuse("rrf", [r1, r2], alpha=0.9).ids == out.ids  # rrf ignores alpha


def test_rrf_ties_break_by_id_whatever_the_run_order() -> None:
    assert rrf([hits(("x", 1.0)), hits(("a", 1.0))]).ids == ["a", "x"]  # both 1/61
    # x ranks (3, 1, 2), y (1, 2, 3), z (2, 3, 1): the same three terms summed in different orders
    # tie exactly (math.fsum), so the id decides.
    r0 = hits(("y", 3.0), ("z", 2.0), ("x", 1.0))
    r1 = hits(("x", 3.0), ("y", 2.0), ("z", 1.0))
    r2 = hits(("z", 3.0), ("x", 2.0), ("y", 1.0))
    for runs in ([r0, r1, r2], [r2, r1, r0], [r1, r0, r2]):
        out = rrf(runs, k_rrf=1)
        assert out.ids == ["x", "y", "z"]
        assert len(set(out.scores.tolist())) == 1


def test_convex_hand_worked() -> None:
    r0 = hits(("a", 3.0), ("b", 2.0), ("c", 1.0))  # minmax: a 1, b .5, c 0
    r1 = hits(("b", 10.0), ("d", 0.0))  # minmax: b 1, d 0
    # alpha .5: a .5*1 = .5; b .5*.5 + .5*1 = .75; c 0; d 0 (tie -> id)
    out = fuse("convex", [r0, r1], alpha=0.5)
    assert out.ids == ["b", "a", "c", "d"]
    assert out.scores == pytest.approx([0.75, 0.5, 0.0, 0.0])
    # alpha .8: a .8; b .8*.5 + .2*1 = .6
    out = fuse("convex", [r0, r1], alpha=0.8)
    assert out.ids == ["a", "b", "c", "d"] and out.scores == pytest.approx([0.8, 0.6, 0.0, 0.0])
    # norm none: raw scores, missing 0: b .5*2 + .5*10 = 6, a 1.5, c .5, d 0
    out = fuse("convex", [r0, r1], norm="none")
    assert out.ids == ["b", "a", "c", "d"] and out.scores == pytest.approx([6.0, 1.5, 0.5, 0.0])


def test_convex_zscore_missing_doc_gets_the_run_minimum() -> None:
    z = 1 / math.sqrt(2 / 3)  # zscore of (1, 2, 3): -z, 0, z
    r0 = hits(("c", 3.0), ("b", 2.0), ("a", 1.0))
    r1 = hits(("d", 5.0), ("a", 4.0))  # zscore: d 1, a -1
    out = convex([r0, r1], [1.0, 1.0], norm="zscore")
    # c: z + (-1) [missing from r1]; d: -z [missing from r0] + 1; b: 0 - 1; a: -z - 1
    expected = {"c": z - 1, "d": 1 - z, "b": -1.0, "a": -z - 1}
    assert out.ids == ["c", "d", "b", "a"]
    assert out.as_dict() == pytest.approx(expected)


def test_weights_and_alpha_validation() -> None:
    r = hits(("a", 1.0))
    for weights in ([1.0], [1.0, -0.5], [1.0, float("nan")], [1.0, 1.0, 1.0]):
        with pytest.raises(ConfigError, match="weights"):
            convex([r, r], weights)
    with pytest.raises(ConfigError, match="weights"):
        rrf([r], weights=[-1.0])
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="alpha"):
            fuse("convex", [r, r], alpha=alpha)
    with pytest.raises(ConfigError, match="2 runs"):
        fuse("convex", [r, r, r])
    with pytest.raises(ConfigError, match="k must be"):
        fuse("rrf", [r], k=0)
    with pytest.raises(ValueError, match="twice"):
        rrf([hits(("a", 2.0), ("a", 1.0))])


def test_unknown_names_list_the_valid_ones() -> None:
    r = hits(("a", 1.0))
    with pytest.raises(ConfigError) as err:
        fuse("borda", [r, r])
    assert all(m in str(err.value) for m in FUSION_METHODS)
    with pytest.raises(ConfigError) as err:
        fuse("convex", [r, r], norm="max")
    assert all(n in str(err.value) for n in NORMALIZATIONS)
    with pytest.raises(ConfigError):
        convex([r], [1.0], norm="max")


def test_k_truncation() -> None:
    r0 = hits(("a", 3.0), ("b", 2.0), ("c", 1.0))
    r1 = hits(("c", 3.0), ("d", 2.0), ("e", 1.0))
    for method in FUSION_METHODS:
        full = fuse(method, [r0, r1])
        top = fuse(method, [r0, r1], k=2)
        assert top.ids == full.ids[:2] and len(top) == 2
        assert len(fuse(method, [r0, r1], k=50)) == 5


def test_fusing_with_an_empty_run() -> None:
    r = hits(("b", 3.0), ("a", 2.0), ("c", 2.0), ("d", -1.0))
    for method in FUSION_METHODS:
        assert fuse(method, [r, EMPTY]).ids == ["b", "a", "c", "d"]
        assert fuse(method, [EMPTY, r]).ids == ["b", "a", "c", "d"]
        assert len(fuse(method, [EMPTY, EMPTY])) == 0
    assert len(rrf([])) == 0 and len(convex([], [])) == 0


def test_inputs_are_not_mutated() -> None:
    r0 = hits(("a", 3.0), ("b", 2.0))
    r1 = hits(("b", 5.0), ("c", 1.0))
    before = [(list(r.ids), r.scores.copy()) for r in (r0, r1)]
    for norm in NORMALIZATIONS:
        fuse("convex", [r0, r1], norm=norm)
    fuse("rrf", [r0, r1])
    for (ids, scores), r in zip(before, (r0, r1), strict=True):
        assert r.ids == ids and np.array_equal(r.scores, scores)
