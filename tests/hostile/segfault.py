import faulthandler


def f(x):
    faulthandler._sigsegv()
    return x
