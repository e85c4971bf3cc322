"""Low-level pieces the compiled loops are built from: calls through a function's address, typed
pointers from integer addresses, and small arrays on the stack.

The sweep's loop is compiled once (disk-cached, strategy-independent) and calls each strategy's
compiled rule loops and each indicator's chunk loop through their addresses: numba can cache a
function that takes an address as an integer, never one that takes a function. The callees are
``cfunc``s with one of the C signatures below, so the caller needs no knowledge of them.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

I64 = ir.IntType(64)
I64P = I64.as_pointer()

#: C signatures of the called-by-address functions (numba types, for cfunc)
CTX = types.CPointer(types.int64)
CHUNK_SIG = types.void(CTX, types.int64)  # an indicator group: ctx, the group's row in the group table
SCAN_SIG = types.int64(CTX, types.int64, types.int64, types.int64)  # ctx, j, first bar, end bar -> entry bar
HOLD_SIG = types.int64(CTX, types.int64, types.int64, types.int64)  # ctx, j, first bar, end bar -> stop bar
BAR_SIG = types.int64(CTX, types.int64, types.int64, types.int64, types.float64, types.int64, types.float64)
#                     ctx, j, t, position, entry_price, bars_held, best_price -> the rule's code


def _call(builder, addr, ret, args):
    fnty = ir.FunctionType(ret, [a.type for a in args])
    return builder.call(builder.inttoptr(addr, fnty.as_pointer()), args)


@intrinsic
def call_chunk(typingctx, addr, ctx, row):
    """``void f(int64 *ctx, int64 row)`` at ``addr``."""
    def codegen(context, builder, sig, args):
        a, c, r = args
        _call(builder, a, ir.VoidType(), [_data(context, builder, sig.args[1], c), r])
        return context.get_dummy_value()
    return types.none(types.int64, ctx, types.int64), codegen


@intrinsic
def call_loop(typingctx, addr, ctx, j, u, t1):
    """``int64 f(int64 *ctx, int64 j, int64 u, int64 t1)`` at ``addr`` (the scan and hold loops)."""
    def codegen(context, builder, sig, args):
        a, c, j_, u_, t_ = args
        return _call(builder, a, I64, [_data(context, builder, sig.args[1], c), j_, u_, t_])
    return types.int64(types.int64, ctx, types.int64, types.int64, types.int64), codegen


@intrinsic
def call_bar(typingctx, addr, ctx, j, t, position, entry_price, bars_held, best_price):
    """``int64 f(int64 *ctx, int64 j, int64 t, int64 position, double entry_price, int64 bars_held,
    double best_price)`` at ``addr``: the rule's code on one bar."""
    def codegen(context, builder, sig, args):
        a, c, *rest = args
        return _call(builder, a, I64, [_data(context, builder, sig.args[1], c), *rest])
    return types.int64(types.int64, ctx, types.int64, types.int64, types.int64, types.float64, types.int64,
                       types.float64), codegen


def _data(context, builder, aryty, value):
    return context.make_array(aryty)(context, builder, value).data


@intrinsic
def address(typingctx, ary):
    """The address of an array's first element, as an int64."""
    if not isinstance(ary, types.Array):
        return None

    def codegen(context, builder, sig, args):
        return builder.ptrtoint(_data(context, builder, sig.args[0], args[0]), I64)
    return types.int64(ary), codegen


@intrinsic
def float_ptr(typingctx, addr):
    """A ``float64*`` from an integer address."""
    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], ir.DoubleType().as_pointer())
    return types.CPointer(types.float64)(types.int64), codegen


@intrinsic
def int_ptr(typingctx, addr):
    """An ``int64*`` from an integer address."""
    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], I64P)
    return types.CPointer(types.int64)(types.int64), codegen


@intrinsic
def stack_floats(typingctx, size):
    """A ``float64*`` to a literal number of slots on the stack: LLVM keeps them in registers when
    they are indexed by constants (a definition's state inside its chunk loop)."""
    if not isinstance(size, types.IntegerLiteral):
        return None

    def codegen(context, builder, sig, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float64), size=max(1, size.literal_value))
    return types.CPointer(types.float64)(size), codegen
