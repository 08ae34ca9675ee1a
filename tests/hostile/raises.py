def f(x):
    raise ValueError("candidate says no")
