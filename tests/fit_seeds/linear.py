"""A straight line: the weakest seed."""

# EVOLVE-BLOCK-START
SLOPE = 0.5
OFFSET = 0.1


def f(x):
    return SLOPE * x + OFFSET
# EVOLVE-BLOCK-END
