"""The verdict: its level and sentences over constructed figures, for every combination of the
figures that are on (CSCV, holdout, walk-forward; DSR defined or not).

Expected levels follow the thresholds of docs/semantics.md ("Verdict levels"), written out here
by case, not taken from the code: all good is promising; one failing figure fails; one figure
short of promising (and none failing) is weak.
"""

from __future__ import annotations

import itertools

import pytest

from engine.validation.verdict import Evidence, verdict

GOOD = {"pbo": 0.10, "prob_oos_loss": 0.20, "holdout_sharpe": 1.3, "wf_return": 0.12}
#: one figure at a failing value, the words the sentence must carry for it
FAILING = {
    "pbo": ({"pbo": 0.62}, "PBO 0.62"),
    "prob_oos_loss": ({"prob_oos_loss": 1.0}, "P(OOS Sharpe < 0) 1.00"),
    "holdout": ({"holdout_sharpe": -2.39}, "holdout (Sharpe -2.39)"),
    "walk_forward": ({"wf_return": -0.71}, "stitched return -71.0%"),
}
#: one figure short of promising, but not failing
SHORT = {
    "pbo": ({"pbo": 0.31}, "PBO 0.31"),
    "holdout": ({"holdout_sharpe": None}, "holdout Sharpe is not positive"),
    "walk_forward": ({"wf_return": 0.0}, "walk-forward stitched return is not positive"),
}
SECTION = {"pbo": "cscv", "prob_oos_loss": "cscv", "holdout": "holdout", "walk_forward": "walk_forward"}
#: words that deny the edge: never in a promising verdict; words of praise never in a failing one
NEGATIVE = ("loses", "luck", "not positive", "plausible", "undefined", "do not")
POSITIVE = ("worth paper trading", "mostly holds")


def evidence(cscv, holdout, wf, dsr=0.99, **over):
    figures = {"ranked": True, "top_sharpe": 0.01, "dsr": dsr, "trials": 40, "cscv": cscv, "holdout": holdout,
               "walk_forward": wf}
    figures.update(pbo=GOOD["pbo"] if cscv else None, prob_oos_loss=GOOD["prob_oos_loss"] if cscv else None,
                   holdout_sharpe=GOOD["holdout_sharpe"] if holdout else None,
                   wf_return=GOOD["wf_return"] if wf else None)
    figures.update(over)
    return Evidence(**figures)


ON = list(itertools.product([False, True], repeat=3))


@pytest.mark.parametrize("cscv,holdout,wf", ON)
def test_every_level_for_every_set_of_figures(cscv, holdout, wf):
    on = {"cscv": cscv, "holdout": holdout, "walk_forward": wf}
    # all good: promising, naming each available figure and nothing negative
    v = verdict(evidence(cscv, holdout, wf))
    assert v.level == "promising" and v.sentence.startswith("promising: ")
    assert "DSR 0.99 after 40 trials" in v.sentence
    assert ("PBO 0.10" in v.sentence) == cscv
    assert ("holdout Sharpe 1.30" in v.sentence) == holdout
    assert ("walk-forward return +12.0%" in v.sentence) == wf
    assert not any(w in v.sentence for w in NEGATIVE)
    # DSR not above 0.95, or undefined: weak
    for dsr, words in ((0.95, "DSR 0.95 ≤ 0.95 after 40 trials"), (None, "deflated Sharpe is undefined")):
        v = verdict(evidence(cscv, holdout, wf, dsr=dsr))
        assert v.level == "weak" and words in v.sentence and not any(w in v.sentence for w in POSITIVE)
    # the top loses in sample, or nothing is ranked: fails whatever else is on
    v = verdict(evidence(cscv, holdout, wf, top_sharpe=-0.002))
    assert v.level == "fails" and "loses money even in sample" in v.sentence
    assert verdict(Evidence(ranked=False, **on)).level == "fails"
    # each available figure alone can fail it, and each unavailable one is ignored
    for name, (over, words) in FAILING.items():
        v = verdict(evidence(cscv, holdout, wf, **over))
        if on[SECTION[name]]:
            assert v.level == "fails" and words in v.sentence, (name, v)
            assert not any(w in v.sentence for w in POSITIVE)
        else:
            assert v.level == "promising", (name, v)
    for name, (over, words) in SHORT.items():
        v = verdict(evidence(cscv, holdout, wf, **over))
        if on[SECTION[name]]:
            assert v.level == "weak" and words in v.sentence, (name, v)
            assert "loses" not in v.sentence
        else:
            assert v.level == "promising", (name, v)


def test_issue_21_case_no_longer_contradicts_itself():
    """PBO 0.00 beside P(OOS Sharpe < 0) 1.000 and a holdout Sharpe of -2.39: fails, and the sentence
    does not claim the ranking holds."""
    v = verdict(evidence(True, True, True, pbo=0.0, prob_oos_loss=1.0, holdout_sharpe=-2.39, dsr=0.39))
    assert v.level == "fails"
    assert v.sentence == (
        "fails: P(OOS Sharpe < 0) 1.00 ≥ 0.5: the half-sample best loses money on the other half in most CSCV "
        "splits; the top combination loses money on the holdout (Sharpe -2.39); do not trade it")


def test_thresholds_are_strict_where_documented():
    assert verdict(evidence(True, False, False, pbo=0.25)).level == "weak"  # promising needs PBO < 0.25
    assert verdict(evidence(True, False, False, pbo=0.5)).level == "fails"  # PBO >= 0.5 fails
    assert verdict(evidence(True, False, False, prob_oos_loss=0.5)).level == "fails"
    assert verdict(evidence(False, True, False, holdout_sharpe=0.0)).level == "weak"
