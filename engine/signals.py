"""Signal codes a strategy's rule returns, and the directions a combination may trade.

A rule returns a bitwise OR of the codes (docs/semantics.md, "Signals").
"""

ENTER_LONG = 1
EXIT_LONG = 2
ENTER_SHORT = 4
EXIT_SHORT = 8

#: ``portfolio.direction`` values
DIRECTIONS = ("long", "short", "both")
LONG, SHORT, BOTH = 1, 2, 3  # bit 1: may go long, bit 2: may go short


def direction_code(direction: str) -> int:
    return DIRECTIONS.index(direction) + 1


def entry_mask(code: int) -> int:
    """The entry bits a combination of this direction acts on while flat."""
    return (ENTER_LONG if code & LONG else 0) | (ENTER_SHORT if code & SHORT else 0)


def exit_masks(code: int) -> tuple[int, int]:
    """The bits that close a long and a short: under ``both`` an opposite entry closes too."""
    both = code == BOTH
    return EXIT_LONG | (ENTER_SHORT if both else 0), EXIT_SHORT | (ENTER_LONG if both else 0)
