"""One agnews training run, one RunResult JSON: the thesis entry point (= `aees train agnews`).

Run `python experiments/task_agnews.py --help` for the flags.
"""

import sys

from aees.cli.train import task_script_main

if __name__ == "__main__":
    sys.exit(task_script_main("agnews"))
