"""Stand-in rule so the kernel template imports on its own. ``engine.fast.specialize`` replaces
its import in every generated kernel, and refuses to generate one if the marker is missing;
should a kernel ever reach it anyway, it fails loudly instead of trading on a dummy rule."""

from numba import njit


@njit(cache=True, nogil=True)
def signal_fn(close):
    raise RuntimeError("the kernel template's placeholder rule ran: kernels must come from "
                       "engine.fast.specialize.kernel_for")
