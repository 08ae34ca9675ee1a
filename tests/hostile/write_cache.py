import os


def f(x):
    with open(os.path.join(os.environ["DISCOVER_CACHE"], "poisoned.txt"), "w") as fh:
        fh.write("fake arrays")
    return x
