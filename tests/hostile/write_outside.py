def f(x):
    with open("/tmp/outside.txt", "w") as fh:
        fh.write("escaped")
    return x
