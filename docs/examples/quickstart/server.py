# In the server file
from dataserve import HTTPDataHandler, run_http_server

xdata = [1, 2, 3]

class MyDataHandler(HTTPDataHandler):
    def handle_request(self, resource, payload):
        if resource == '/xdata':
            global xdata
            return xdata + payload
        elif resource == '/ydata':
            return 2
        return None

run_http_server(5001, MyDataHandler)
