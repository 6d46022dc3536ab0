"""The clock: queues a sales report job every CLOCK_INTERVAL seconds.

It only schedules; a worker does the work. Run exactly one (clock=1): two
clocks would schedule every report twice.
"""

import json
import os
import sys
import time

import common


def main():
    stopping = common.on_stop()
    interval = float(os.environ.get("CLOCK_INTERVAL", "10"))
    store = common.store()
    if common.wait_for("the store", store.ping, stopping):
        common.say(f"scheduling a sales report every {interval:g}s")
    while not stopping.wait(interval):
        job = {"kind": "report", "at": int(time.time()), "by": common.INSTANCE}
        try:
            store.lpush(common.QUEUE, json.dumps(job, sort_keys=True))
            common.say("queued a sales report")
        except common.StoreDown as e:
            common.say(f"no sales report this time, the store is unavailable: {common.one_line(e)}")
    common.say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
