"""The clock: enqueues a sales report job every CLOCK_INTERVAL seconds.

It only schedules; a worker does the work. Run exactly one (clock=1): two
clocks would schedule every report twice.
"""

import os
import sys
import time

import common
import resp


def main():
    stopping = common.on_stop()
    interval = float(os.environ.get("CLOCK_INTERVAL", "10"))
    try:
        store = resp.connect(stopping=stopping)
        print(f"{common.INSTANCE}: scheduling a sales report every {interval:g}s")
        while not stopping.wait(interval):
            common.enqueue(store, {"kind": "report", "at": int(time.time()), "by": common.INSTANCE})
            print(f"{common.INSTANCE}: enqueued a sales report")
    except resp.StoreError as e:
        return common.ended(stopping, e)
    return common.ended(stopping)


if __name__ == "__main__":
    sys.exit(main())
