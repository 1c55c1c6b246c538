"""One sst2 training run, one RunResult JSON: the thesis entry point (= `aees train sst2`).

Run `python experiments/task_sst2.py --help` for the flags.
"""

import sys

from aees.cli.train import task_script_main

if __name__ == "__main__":
    sys.exit(task_script_main("sst2"))
