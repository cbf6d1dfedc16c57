"""The demo the installed package has: run ``python -m dataserve demo`` and print what it prints."""

import subprocess
import sys

demo = subprocess.run(
    [sys.executable, "-m", "dataserve", "demo"], capture_output=True, text=True, timeout=60, check=True
)
print("$ python -m dataserve demo")
print(demo.stdout, end="")
