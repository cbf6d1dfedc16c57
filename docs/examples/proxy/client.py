# In the client file
from dataserve.proxy import get_proxy_class

store = get_proxy_class("Store", 5002)
ret = store.extend([4, 5, 6])  # run in the server
print(ret)  # [1, 2, 3, 4, 5, 6]
ret = store.ydata()
print(ret)  # 2
