def f(x):
    block = bytearray(10 * 1024**3)
    return float(len(block))
