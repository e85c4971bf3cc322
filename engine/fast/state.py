"""Column layout of the per-combination simulation state carried between time chunks,
and of the per-combination inputs (position rules)."""

# float state: the position (cash, qty > 0, entry fill, entry fee, cost basis, stop level,
# take-profit level, best price since the entry), then the metric accumulators
CASH, QTY, ENTRY_PRICE, ENTRY_FEE, ENTRY_COST, LEVEL, TP_LEVEL, BEST_PRICE, PREV_E, PEAK, SUM_R, SUM_R2, \
    SUM_DOWN2, MAX_DD, MAX_DD_ABS, WIN_PNL, LOSS_PNL, RET_SUM, BEST, WORST, PNL_SUM, FEES, SUM_R3, SUM_R4 = range(24)
NF = 24
# integer state: POS is +1 long, -1 short, 0 flat; PENDING an order for the next open
# (+1 enter long, -1 enter short, EXIT_ORDER close); RUINED 1 once equity reached 0
POS, ENTRY_BAR, PENDING, PEAK_I, AT_PEAK, MAX_DUR, N_CLOSED, N_WINS, HELD_SUM, EXPO, N_REC, RUINED = range(12)
NI = 12
EXIT_ORDER = 2
# per-combination rules: floats (a rule that is off holds inf: its level is then out of reach)
R_STOP, R_TAKE_PROFIT, R_TRAILING, R_SIZE = range(4)
NR = 4
# per-combination rules: integers (signal masks from the direction; max_bars, huge when off)
D_ENTRY, D_EXIT_LONG, D_EXIT_SHORT, D_MAX_BARS = range(4)
ND = 4
NO_LIMIT = 1 << 62
# trade record columns
TR_ENTRY_BAR, TR_EXIT_BAR, TR_REASON, TR_SIDE = range(4)
TR_ENTRY_PRICE, TR_EXIT_PRICE, TR_QTY, TR_FEES, TR_PNL, TR_RET = range(6)
# exit reasons, indexing engine.trade.EXIT_REASONS
REASON_SIGNAL, REASON_STOP, REASON_TRAILING, REASON_TAKE_PROFIT, REASON_TIME, REASON_BUST = range(6)
REASON_WINDOW_END = 7  # after "open", which only the end of a run reports
