"""The verdict line: each branch, on hand-set figures."""

from __future__ import annotations

from types import SimpleNamespace

from engine.report.validation import verdict


def outcome(pbo=None, N=64):
    return SimpleNamespace(cscv=None if pbo is None else SimpleNamespace(pbo=pbo), deflated=SimpleNamespace(N=N))


def top(sr=0.01, dsr=0.5):
    return {"sharpe_per_bar": sr, "dsr": dsr}


def test_verdicts():
    assert verdict(outcome(0.62), top(dsr=0.41)) == (
        "PBO 0.62: the top combination is more likely than not to fall below the median out of sample; "
        "its Sharpe is not significant after 64 trials (DSR 0.41)")
    assert verdict(outcome(0.31), top(dsr=0.97)).startswith(
        "PBO 0.31: the top combination usually stays above the median out of sample, but overfitting is plausible; "
        "its Sharpe is significant after 64 trials")
    assert verdict(outcome(0.05), top(sr=-0.002)) == (
        "PBO 0.05: the in-sample ranking mostly holds out of sample; the top combination loses money even in "
        "sample (Sharpe below 0): nothing here is worth trading")
    assert verdict(outcome(None, N=1000), top(dsr=0.99)) == (
        "the top combination's Sharpe is significant after 1,000 trials (DSR 0.99)")
    assert verdict(outcome(None), top(dsr=None)).startswith("DSR undefined")
    assert verdict(outcome(0.5), None).startswith("PBO 0.50: the top combination is more likely than not")
