import os


def f(x):
    os.system("true")
    return x
