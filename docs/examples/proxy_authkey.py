"""The proxy server's authkey: a weak one is warned about as the server starts (on stderr), and
a client with another key is refused."""

from dataserve import DataServeError
from dataserve.proxy import get_proxy_class, serve_proxy


class Store:
    def ydata(self):
        return 2


# The class name, the original ProxyServer's default: anyone can guess it.
with serve_proxy(Store, authkey="Store") as server:
    try:
        get_proxy_class("Store", server.port, authkey="a key of more than 16 bytes")
    except DataServeError as exc:
        print("DataServeError:", exc)
    else:
        raise AssertionError("expected DataServeError")
    assert get_proxy_class("Store", server.port, authkey="Store").ydata() == 2
