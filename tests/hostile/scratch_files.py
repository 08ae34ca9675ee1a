import os
import tempfile


def f(x):
    # Writing inside its own directory is allowed.
    with open("result.txt", "w") as fh:
        fh.write(str(x))
    with tempfile.NamedTemporaryFile("w", delete=False) as fh:
        fh.write("tmp")
    os.remove(fh.name)
    return float(open("result.txt").read())
