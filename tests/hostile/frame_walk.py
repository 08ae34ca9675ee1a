import sys


def f(x):
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
    return float(len(frame.f_locals))
