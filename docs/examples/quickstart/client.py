# In the client file
from dataserve import HTTPDataClient

client = HTTPDataClient(port=5001)
ret = client.send('/xdata', [4, 5, 6])
print(ret)   # [1, 2, 3, 4, 5, 6]
ret = client.send('/ydata')
print(ret)   # 2
