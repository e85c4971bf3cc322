"""Column layout of the per-combination simulation state carried between time chunks."""

# float state
CASH, QTY, ENTRY_PRICE, ENTRY_FEE, ENTRY_COST, LEVEL, PREV_E, PEAK, SUM_R, SUM_R2, SUM_DOWN2, MAX_DD, \
    MAX_DD_ABS, WIN_PNL, LOSS_PNL, RET_SUM, BEST, WORST, PNL_SUM, FEES = range(20)
NF = 20
# integer state
POS, ENTRY_BAR, PENDING, PEAK_I, AT_PEAK, MAX_DUR, N_CLOSED, N_WINS, HELD_SUM, EXPO, N_REC = range(11)
NI = 11
# trade record columns
TR_ENTRY_BAR, TR_EXIT_BAR, TR_REASON = range(3)
TR_ENTRY_PRICE, TR_EXIT_PRICE, TR_QTY, TR_FEES, TR_PNL, TR_RET = range(6)
REASON_SIGNAL, REASON_STOP = 0, 1
