import os
import tempfile


def f(x):
    # Leave files where a later job in the same worker could find them.
    with open(os.path.join("..", "left_behind.txt"), "w") as fh:
        fh.write("x")
    with open(os.path.join(tempfile.gettempdir(), "left_in_tmp.txt"), "w") as fh:
        fh.write("x")
    return float(os.path.basename(tempfile.gettempdir()) == os.path.basename(os.getcwd()))
