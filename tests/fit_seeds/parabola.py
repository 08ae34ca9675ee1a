"""A parabola with the wrong constants."""

# EVOLVE-BLOCK-START
A = 1.0
B = -0.2
C = 0.6


def f(x):
    return A * x * x + B * x + C
# EVOLVE-BLOCK-END
