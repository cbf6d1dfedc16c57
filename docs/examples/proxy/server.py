# In the server file
from dataserve.proxy import run_proxy_server


class Store:
    def __init__(self):
        self.xdata = [1, 2, 3]

    def extend(self, values):
        self.xdata.extend(values)
        return self.xdata

    def ydata(self):
        return 2


run_proxy_server(Store, 5002)
