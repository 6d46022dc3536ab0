"""A server that drains slowly: listens on $PORT, and on SIGTERM or SIGINT
keeps its port for DRAIN seconds before exiting 0. Each signal it receives
is appended to $SIGNALS as "PID NAME". Reads stdin when READ_STDIN is set
and says "stdin closed" at end-of-file."""
import os
import signal
import socket
import sys
import threading
import time

drain = float(os.environ.get("DRAIN", "1.5"))
log = os.environ.get("SIGNALS")
stopping = threading.Event()


def say(text):
    """One line in one write: several drainers may share a pipe, and with
    PYTHONUNBUFFERED print writes the text and its newline apart."""
    os.write(1, f"{text}\n".encode())


def on_signal(number, _frame):
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {signal.Signals(number).name}\n")
    stopping.set()


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

if os.environ.get("READ_STDIN"):
    def read():
        sys.stdin.read()
        say("stdin closed")
    threading.Thread(target=read, daemon=True).start()

server = None
if os.environ.get("PORT") and not os.environ.get("NO_LISTEN"):
    server = socket.socket()
    try:
        server.bind(("127.0.0.1", int(os.environ["PORT"])))
    except OSError as e:
        say(f"cannot listen: {e}")
        sys.exit(1)
    server.listen(16)
    server.settimeout(0.05)
say(f"serving pid={os.getpid()}")
while not stopping.is_set():
    if server is None:
        time.sleep(0.05)
        continue
    try:
        conn, _ = server.accept()
        conn.sendall(b"hi\n")
        conn.close()
    except socket.timeout:
        pass
time.sleep(drain)
say(f"drained pid={os.getpid()}")
