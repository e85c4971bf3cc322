"""Layouts shared by the compiled loop and the code generated for each rule and indicator:
the per-combination state carried between time chunks, the per-combination inputs (position
rules), the block context the called-by-address functions read, and the indicator tables."""

# float state: the position (cash, qty > 0, entry fill, entry fee, cost basis, stop level,
# take-profit level, best price since the entry), then the metric accumulators
CASH, QTY, ENTRY_PRICE, ENTRY_FEE, ENTRY_COST, LEVEL, TP_LEVEL, BEST_PRICE, PREV_E, PEAK, SUM_R, SUM_R2, \
    SUM_DOWN2, MAX_DD, MAX_DD_ABS, WIN_PNL, LOSS_PNL, RET_SUM, BEST, WORST, PNL_SUM, FEES, SUM_R3, SUM_R4 = range(24)
# perp (P1-P5): the isolated wallet balance WB, free cash, initial margin M, liquidation price, the
# entry bracket's mmr and cum, the open trade's funding and the run's total funding
WB, FREE, MARGIN, LIQ_PRICE, MMR, CUM, TRADE_FUNDING, TOTAL_FUNDING = range(24, 32)
NF = 32
# integer state: POS is +1 long, -1 short, 0 flat; PENDING an order for the next open
# (+1 enter long, -1 enter short, EXIT_ORDER close); RUINED 1 once equity reached 0; RAISED 1 + the
# bar a tight loop started on when the rule raised in it (the combination stops there), else 0
POS, ENTRY_BAR, PENDING, PEAK_I, AT_PEAK, MAX_DUR, N_CLOSED, N_WINS, HELD_SUM, EXPO, N_REC, RUINED, N_LIQ, \
    RAISED = range(14)
NI = 14
EXIT_ORDER = 2
# per-combination rules: floats (a rule that is off holds inf: its level is then out of reach)
R_STOP, R_TAKE_PROFIT, R_TRAILING, R_SIZE, R_LEVERAGE = range(5)
NR = 5
# per-combination rules: integers (signal masks from the direction; max_bars, huge when off)
D_ENTRY, D_EXIT_LONG, D_EXIT_SHORT, D_MAX_BARS = range(4)
ND = 4
NO_LIMIT = 1 << 62
# trade record columns
TR_ENTRY_BAR, TR_EXIT_BAR, TR_REASON, TR_SIDE = range(4)
TR_ENTRY_PRICE, TR_EXIT_PRICE, TR_QTY, TR_FEES, TR_PNL, TR_RET, TR_FUNDING = range(7)
TRF = 7
# exit reasons, indexing engine.trade.EXIT_REASONS
REASON_SIGNAL, REASON_STOP, REASON_TRAILING, REASON_TAKE_PROFIT, REASON_TIME, REASON_BUST = range(6)
REASON_WINDOW_END = 7  # after "open", which only the end of a run reports
REASON_LIQUIDATION = 8

# --- the block context: an int64 array per thread block, read by every called-by-address function
# price arrays (addresses), bars in the data; the chunk being computed
X_O, X_H, X_L, X_C, X_V, X_N, X_T0, X_T1 = range(8)
# this block's indicator buffer and state (addresses), the node and group tables (addresses, rows)
X_BUF, X_STATE, X_NODES, X_NPAR, X_K, X_GROUPS = range(8, 14)
# the rule's view: each combination's indicator nodes (m, KI) and parameters (m, NFP) / (m, NIP)
X_SLOTS, X_KI, X_FP, X_NFP, X_IP, X_NIP = range(14, 20)
# the hold loops' frame (addresses); non-zero: stop at the next chunk (Ctrl-C)
X_FRAME, X_IFRAME, X_STOP = range(20, 23)
# perp (addresses, 0 for spot): the range liquidation is checked on, each bar's funding F_t, and
# the same range with funding bars at +inf / -inf (the hold loops' one test per bar for both)
X_LIQ_HIGH, X_LIQ_LOW, X_FUND, X_GATE_HIGH, X_GATE_LOW = range(23, 28)
CTX_SIZE = 28

# --- the hold loops' frame: the caller's position and accumulators, handed over in memory
H_LEVEL, H_TP_LEVEL, H_BEST, H_TRAIL_K, H_ENTRY_PRICE, H_CASH, H_QTY, H_PREV, H_PEAK, H_SUM_R, H_SUM_R2, H_DOWN2, \
    H_MAX_DD, H_MAX_DD_ABS, H_DD_GATE, H_SUM_R3, H_SUM_R4 = range(17)
# perp's hold loops also read and write the isolated wallet WB, the liquidation price, the entry
# bracket's mmr and cum, the open trade's funding and the run's
H_WB, H_LIQ_PRICE, H_MMR, H_CUM, H_TRADE_FUNDING, H_TOTAL_FUNDING = range(17, 23)
HF = 23
HI_END_BAR, HI_ENTRY_BAR, HI_PEAK_I, HI_AT_PEAK, HI_MAX_DUR = range(5)
HI = 5

# --- indicator nodes (one row each, the same for every block): where the step first runs, the
# first bar with a value, the row's position of the chunk's first bar in the buffer, the margin of
# earlier values kept before it, the state's offset and size, the inputs (a price: -1 - its index in
# engine.indicators.PRICES; a node: its row), the integer parameters
N_START, N_VALID, N_ROW, N_MARGIN, N_STATE, N_SIZE = range(6)
N_IN = 6  # inputs: columns N_IN .. N_IN + MAX_INPUTS - 1
MAX_INPUTS = 6
N_IPAR = N_IN + MAX_INPUTS  # integer parameters, then their float counterparts in the NPAR table
MAX_PARAMS = 8
NODE_COLS = N_IPAR + MAX_PARAMS
# a group of nodes of one definition computed in one pass: how many, the nodes, the chunk function
G_COUNT, G_Q0, G_Q1, G_Q2, G_Q3, G_ADDR = range(6)
GROUP_COLS = 6
GROUP_MAX = 4

# --- the functions of a strategy's rule, by address (one table per sweep)
A_BAR, A_SCAN_LONG, A_SCAN_SHORT, A_SCAN_BOTH, A_HOLD_LONG, A_HOLD_LONG_BOTH, A_HOLD_SHORT, A_HOLD_SHORT_BOTH = \
    range(8)
NA = 8
