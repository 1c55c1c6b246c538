"""One cifar100 training run, one RunResult JSON: the thesis entry point (= `aees train cifar100`).

Run `python experiments/task_cifar100.py --help` for the flags.
"""

import sys

from aees.cli.train import task_script_main

if __name__ == "__main__":
    sys.exit(task_script_main("cifar100"))
