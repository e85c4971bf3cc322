"""The verdict on a validated sweep: a level (fails, weak, promising) and the sentences behind it.

A pure function of the figures that are on (docs/semantics.md, "Verdict levels"):

* **fails** when any available figure says the top combination should not be traded: no ranked
  combination, its in-sample Sharpe ≤ 0, PBO ≥ 0.5, P(OOS Sharpe < 0) ≥ 0.5, its holdout Sharpe
  < 0, or a walk-forward stitched return < 0;
* **promising** when nothing fails and every available figure is good: PBO < 0.25 (with CSCV),
  DSR > 0.95 (defined), holdout Sharpe > 0 (with a holdout), stitched return > 0 (with
  walk-forward);
* **weak** otherwise.

The sentences of a level only name the figures that decide it, so they never contradict it
(or each other): a failing verdict lists what fails, a weak one what falls short, a promising one
the evidence for it.
"""

from __future__ import annotations

from dataclasses import dataclass

PBO_FAILS = 0.5
PBO_PROMISING = 0.25
OOS_LOSS_FAILS = 0.5
DSR_PROMISING = 0.95
LEVELS = ("fails", "weak", "promising")


@dataclass(frozen=True)
class Evidence:
    """The figures a verdict reads; None where a figure is off (or undefined)."""

    ranked: bool  # a top combination exists
    top_sharpe: float | None = None  # its in-sample Sharpe (sign only matters)
    dsr: float | None = None
    trials: int | None = None  # N of the DSR
    cscv: bool = False
    pbo: float | None = None
    prob_oos_loss: float | None = None
    holdout: bool = False
    holdout_sharpe: float | None = None  # the top's out-of-sample Sharpe (None: undefined)
    walk_forward: bool = False
    wf_return: float | None = None  # stitched out-of-sample total return


@dataclass(frozen=True)
class Verdict:
    level: str
    reasons: tuple[str, ...]

    @property
    def sentence(self) -> str:
        return f"{self.level}: " + "; ".join(self.reasons)


def _f(x: float) -> str:
    return f"{x:.2f}"


def verdict(e: Evidence) -> Verdict:
    if not e.ranked:
        return Verdict("fails", ("no combination is ranked (too few trades): nothing here can be traded",))
    fails: list[str] = []
    if e.top_sharpe is not None and e.top_sharpe <= 0:
        fails.append("the top combination loses money even in sample (Sharpe ≤ 0)")
    if e.cscv and e.pbo is not None and e.pbo >= PBO_FAILS:
        fails.append(f"PBO {_f(e.pbo)} ≥ {PBO_FAILS}: the in-sample best more likely than not falls below the "
                     "median out of sample")
    if e.cscv and e.prob_oos_loss is not None and e.prob_oos_loss >= OOS_LOSS_FAILS:
        fails.append(f"P(OOS Sharpe < 0) {_f(e.prob_oos_loss)} ≥ {OOS_LOSS_FAILS}: the half-sample best loses "
                     "money on the other half in most CSCV splits")
    if e.holdout and e.holdout_sharpe is not None and e.holdout_sharpe < 0:
        fails.append(f"the top combination loses money on the holdout (Sharpe {_f(e.holdout_sharpe)})")
    if e.walk_forward and e.wf_return is not None and e.wf_return < 0:
        fails.append(f"walk-forward loses money out of sample (stitched return {e.wf_return:+.1%})")
    if fails:
        return Verdict("fails", tuple(fails) + ("do not trade it",))
    short: list[str] = []
    good: list[str] = []
    if e.cscv:
        if e.pbo is None:
            short.append("PBO is undefined")
        elif e.pbo >= PBO_PROMISING:
            short.append(f"PBO {_f(e.pbo)} ≥ {PBO_PROMISING}: overfitting is plausible")
        else:
            good.append(f"PBO {_f(e.pbo)} < {PBO_PROMISING}")
    n = f" after {e.trials:,} trials" if e.trials is not None else ""
    if e.dsr is None:
        short.append("the deflated Sharpe is undefined (too few returns or trials)")
    elif e.dsr <= DSR_PROMISING:
        short.append(f"DSR {_f(e.dsr)} ≤ {DSR_PROMISING}{n}: the Sharpe may be luck")
    else:
        good.append(f"DSR {_f(e.dsr)}{n}")
    if e.holdout:
        if e.holdout_sharpe is None or e.holdout_sharpe == 0:
            short.append("the holdout Sharpe is not positive (undefined or 0: no out-of-sample evidence)")
        else:
            good.append(f"holdout Sharpe {_f(e.holdout_sharpe)}")
    if e.walk_forward:
        if e.wf_return is None or e.wf_return == 0:
            short.append("the walk-forward stitched return is not positive")
        else:
            good.append(f"walk-forward return {e.wf_return:+.1%}")
    if short:
        return Verdict("weak", ("no figure fails, but " + short[0],) + tuple(short[1:]))
    return Verdict("promising", tuple(good) + ("worth paper trading before real money",))
