def f(x):
    import socket

    socket.create_connection(("127.0.0.1", 9), timeout=1)
    return x
