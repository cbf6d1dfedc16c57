# myhandlers.py
from dataserve import HTTPDataHandler

xdata = [1, 2, 3]


class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == "/xdata":
            return xdata + payload
        elif resource == "/ydata":
            return 2
        return None
