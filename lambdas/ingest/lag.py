"""How late a series is: the age of its first candle that has closed but is not stored.

Standard library only (the stack takes the default threshold from here).

A series whose newest stored candle opened at ``w`` (its watermark) has stored every candle
that closed by ``w + iv``; the next one closes at ``w + 2·iv``. Its *watermark age* at ``now``
is ``max(0, now − (w + 2·iv) − max(0, P − iv))``: how long the first missing candle has been
closed, less the wait for the next run that a candle shorter than the schedule period ``P``
(15 minutes) always has (a 5m candle closing at :20 is stored by the :31 run, not at :20).
It is the same measure for every interval (a 1d series is not "older" than a 15m one for
having longer candles), so one figure, the oldest series' age (``OldestWatermarkAgeSeconds``),
watches them all.

A perp's funding unit has no interval: its watermark is the time its table was last known complete
(lambdas/ingest/funding_unit.py), so its age is ``max(0, now − w − P)``: 0 when the last dispatch's
run completed, growing like a klines series' once runs stop.

Worked example (15m, dispatches at :01, :16, :31, :46; a dispatch reads the index before the
workers it starts have run). The 09:46 run stored the candle 09:30–09:45, the newest closed
then: ``w`` = 09:30, and the first missing candle, 09:45–10:00, closed at 10:00. At the 10:01
dispatch a healthy series therefore reads 60 s (this slot's worker stores that candle). A
series that stopped after the 09:46 run reads the same 60 s at 10:01, then 960 s at 10:16 and
1,860 s at 10:31: its *first missed candle* is 09:45–10:00. With the default threshold of
600 s the 10:16 figure breaches, so the alarm fires about 16 minutes after the first missed
candle closed (plus CloudWatch's evaluation, a minute or two), well inside 35 minutes, while
a healthy series never reads more than a minute or two. A failure that an SQS retry mends
before 10:16 is never seen.

Wording (the alarm topic's digest, :func:`describe_age`): a klines series' age is how long its
first missing *candle* has been closed. A funding table has no candles: its events come every
8h, 4h or 1h (and a symbol's interval can change), so its age is said in hours and in the
symbol's current funding interval (the newest stored event's ``interval_hours``), the unit a
reader judges it by. Example: a BTCUSDT table last known complete at 06:00 read at 10:16 (age
4 h 01 min, period subtracted) with 8h funding: "funding table last known complete 4.0 h ago
(0.5 of its 8h funding interval; the next event may still be inside it)"; a 1h symbol with the
same age is 4.0 funding intervals behind, i.e. about 4 missed events.
"""

from __future__ import annotations

#: Default alarm threshold (context ``ingestLagAlarmMinutes``): above a healthy series' 1–2 minutes,
#: below the 16 minutes a series reads one dispatch after its first missed candle.
DEFAULT_LAG_ALARM_MINUTES = 10
#: The ingest schedule's period: a dispatch at minutes 1, 16, 31 and 46 of every hour.
SCHEDULE_PERIOD_MS = 15 * 60_000
#: A dispatch names a lagging series in its digest at most this often.
DIGEST_EVERY_MS = 3_600_000


def watermark_age_ms(watermark_ms: int | None, interval_ms: int, now_ms: int, *,
                     since_ms: int | None = None) -> int:
    """Milliseconds since the first unstored candle closed (0 if it has not closed yet).

    Without a watermark (nothing stored yet) the age counts from ``since_ms``: the close of the
    first candle the series should hold (its history start plus one interval) or, for a series
    the index has not heard of, when it was first dispatched.
    """
    if watermark_ms is None:
        return max(0, now_ms - since_ms) if since_ms is not None else 0
    return max(0, now_ms - (watermark_ms + 2 * interval_ms) - max(0, SCHEDULE_PERIOD_MS - interval_ms))



def describe_age(kind: str, age_ms: int, funding_interval_h: int | None = None) -> str:
    """The age in the digest's words: in minutes since the first missing candle closed (klines, mark),
    or for a funding table in hours and in its funding intervals (none "bars": it has none)."""
    if kind != "funding":
        return f"first missing candle closed {age_ms // 60_000} min ago"
    hours = age_ms / 3_600_000
    text = f"funding table last known complete {hours:.1f} h ago"
    if funding_interval_h:
        n = age_ms / (funding_interval_h * 3_600_000)
        text += (f" ({n:.1f} of its {funding_interval_h}h funding interval"
                 + ("; the next event may still be inside it)" if n < 1 else f"s: about {int(n)} event(s) missed)"))
    else:
        text += " (funding interval not known yet)"
    return text
