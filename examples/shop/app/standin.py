"""A stand-in for redis-server, standard library only.

It speaks the part of the Redis protocol (RESP2) the shop uses, keeps
everything in memory (like `redis-server --save "" --appendonly no`) and
serves each client on its own thread. bin/store runs it when redis-server is
not installed, or when STORE=standin.

Commands: PING ECHO AUTH SELECT QUIT GET SET (NX, EX, PX) DEL EXISTS INCR
INCRBY RENAME LPUSH RPUSH RPOP BRPOP LRANGE LLEN LTRIM HSET HGET HGETALL.
"""

import os
import signal
import socketserver
import sys
import threading
import time


class Data:
    """Every database, behind one lock; BRPOP waits on its condition."""

    def __init__(self, password):
        self.password = password
        self.cond = threading.Condition()
        self.dbs = {}
        self.expiry = {}

    def db(self, n):
        return self.dbs.setdefault(n, {})

    def get(self, n, key):
        """The live value of key, after dropping it if it has expired."""
        at = self.expiry.get((n, key))
        if at is not None and at <= time.monotonic():
            self.db(n).pop(key, None)
            del self.expiry[(n, key)]
        return self.db(n).get(key)


class Fail(Exception):
    pass


WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def typed(value, kind):
    if value is not None and not isinstance(value, kind):
        raise Fail(WRONGTYPE)
    return value


def integer(arg):
    try:
        return int(arg)
    except ValueError:
        raise Fail("ERR value is not an integer or out of range") from None


def arity(args, low, high=None):
    if len(args) < low or (high is not None and len(args) > high):
        raise Fail(f"ERR wrong number of arguments for '{args[0].decode().lower()}' command")


def run(data, session, args):
    """Executes one command under the lock; returns a reply value, or a
    ("block", keys, timeout) request for BRPOP."""
    name = args[0].upper()
    n = session["db"]
    db = data.db(n)
    if name != b"AUTH" and data.password and not session["authed"]:
        raise Fail("NOAUTH Authentication required.")
    if name == b"PING":
        arity(args, 1, 2)
        return args[1] if len(args) == 2 else ("+", "PONG")
    if name == b"ECHO":
        arity(args, 2, 2)
        return args[1]
    if name == b"AUTH":
        arity(args, 2, 3)
        if not data.password:
            raise Fail("ERR AUTH <password> called without any password configured")
        if args[-1].decode() != data.password:
            raise Fail("WRONGPASS invalid username-password pair")
        session["authed"] = True
        return ("+", "OK")
    if name == b"SELECT":
        arity(args, 2, 2)
        session["db"] = integer(args[1])
        return ("+", "OK")
    if name == b"QUIT":
        session["quit"] = True
        return ("+", "OK")
    if name == b"GET":
        arity(args, 2, 2)
        return typed(data.get(n, args[1]), bytes)
    if name == b"SET":
        arity(args, 3)
        key, value, opts = args[1], args[2], [o.upper() for o in args[3:]]
        ttl = None
        i = 0
        while i < len(opts):
            if opts[i] in (b"EX", b"PX") and i + 1 < len(opts):
                unit = 1.0 if opts[i] == b"EX" else 0.001
                ttl = integer(args[3 + i + 1]) * unit
                i += 2
            elif opts[i] == b"NX":
                i += 1
            else:
                raise Fail("ERR syntax error")
        if b"NX" in opts and data.get(n, key) is not None:
            return None
        db[key] = value
        data.expiry.pop((n, key), None)
        if ttl is not None:
            data.expiry[(n, key)] = time.monotonic() + ttl
        return ("+", "OK")
    if name == b"DEL":
        arity(args, 2)
        gone = 0
        for key in args[1:]:
            if data.get(n, key) is not None:
                del db[key]
                data.expiry.pop((n, key), None)
                gone += 1
        return gone
    if name == b"EXISTS":
        arity(args, 2)
        return sum(1 for key in args[1:] if data.get(n, key) is not None)
    if name in (b"INCR", b"INCRBY"):
        arity(args, 2, 2 if name == b"INCR" else 3)
        by = 1 if name == b"INCR" else integer(args[2])
        value = integer(typed(data.get(n, args[1]), bytes) or b"0") + by
        db[args[1]] = str(value).encode()
        return value
    if name == b"RENAME":
        arity(args, 3, 3)
        value = data.get(n, args[1])
        if value is None:
            raise Fail("ERR no such key")
        db[args[2]] = db.pop(args[1])
        data.expiry.pop((n, args[2]), None)
        at = data.expiry.pop((n, args[1]), None)
        if at is not None:
            data.expiry[(n, args[2])] = at
        return ("+", "OK")
    if name in (b"LPUSH", b"RPUSH"):
        arity(args, 3)
        items = typed(data.get(n, args[1]), list)
        if items is None:
            items = db[args[1]] = []
        for value in args[2:]:
            if name == b"LPUSH":
                items.insert(0, value)
            else:
                items.append(value)
        data.cond.notify_all()
        return len(items)
    if name == b"RPOP":
        arity(args, 2, 2)
        return pop(data, n, args[1])
    if name == b"BRPOP":
        arity(args, 3)
        timeout = float(args[-1])
        for key in args[1:-1]:
            value = pop(data, n, key)
            if value is not None:
                return [key, value]
        return ("block", args[1:-1], timeout)
    if name == b"LLEN":
        arity(args, 2, 2)
        return len(typed(data.get(n, args[1]), list) or [])
    if name == b"LRANGE":
        arity(args, 4, 4)
        items = typed(data.get(n, args[1]), list) or []
        start, stop = span(len(items), integer(args[2]), integer(args[3]))
        return items[start:stop]
    if name == b"LTRIM":
        arity(args, 4, 4)
        items = typed(data.get(n, args[1]), list)
        if items is not None:
            start, stop = span(len(items), integer(args[2]), integer(args[3]))
            items[:] = items[start:stop]
            if not items:
                del db[args[1]]
        return ("+", "OK")
    if name == b"HSET":
        if len(args) < 4 or len(args) % 2:
            raise Fail("ERR wrong number of arguments for 'hset' command")
        fields = typed(data.get(n, args[1]), dict)
        if fields is None:
            fields = db[args[1]] = {}
        added = 0
        for i in range(2, len(args), 2):
            added += args[i] not in fields
            fields[args[i]] = args[i + 1]
        return added
    if name == b"HGET":
        arity(args, 3, 3)
        return (typed(data.get(n, args[1]), dict) or {}).get(args[2])
    if name == b"HGETALL":
        arity(args, 2, 2)
        fields = typed(data.get(n, args[1]), dict) or {}
        return [x for pair in fields.items() for x in pair]
    raise Fail(f"ERR unknown command '{args[0].decode(errors='replace')}'")


def pop(data, n, key):
    items = typed(data.get(n, key), list)
    if not items:
        return None
    value = items.pop()
    if not items:
        del data.db(n)[key]
    return value


def span(length, start, stop):
    """Redis's inclusive, possibly negative, LRANGE bounds as a Python slice."""
    if start < 0:
        start = max(length + start, 0)
    if stop < 0:
        stop = length + stop
    return start, max(stop + 1, start)


def encode(value):
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, tuple):
        return f"{value[0]}{value[1]}\r\n".encode()
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(encode(v) for v in value)
    raise TypeError(type(value))


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        data = self.server.data
        session = {"db": 0, "authed": False, "quit": False}
        while not session["quit"]:
            try:
                args = self.read_command()
            except (OSError, ValueError):
                return
            if args is None:
                return
            if not args:
                continue
            with data.cond:
                try:
                    reply = run(data, session, args)
                    if isinstance(reply, tuple) and reply[0] == "block":
                        reply = self.block(data, session["db"], reply[1], reply[2])
                except Fail as e:
                    reply = ("-", str(e))
            try:
                self.wfile.write(encode(reply))
                self.wfile.flush()
            except OSError:
                return

    def block(self, data, n, keys, timeout):
        """BRPOP: waits (holding the condition) until a key has an item."""
        deadline = None if timeout == 0 else time.monotonic() + timeout
        while not self.server.stopping:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            data.cond.wait(0.5 if left is None else min(left, 0.5))
            for key in keys:
                value = pop(data, n, key)
                if value is not None:
                    return [key, value]
        return None

    def read_command(self):
        """One command: a RESP array of bulk strings, or an inline command."""
        line = self.rfile.readline()
        if not line:
            return None
        if not line.startswith(b"*"):
            return line.split()
        args = []
        for _ in range(int(line[1:])):
            header = self.rfile.readline()
            if not header.startswith(b"$"):
                raise ValueError("expected a bulk string")
            size = int(header[1:])
            args.append(self.rfile.read(size + 2)[:-2])
        return args


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    stopping = False


def main():
    port = int(os.environ["PORT"])
    server = Server(("127.0.0.1", port), Handler)
    server.data = Data(os.environ.get("STORE_PASSWORD"))

    def stop(signum, frame):
        server.stopping = True
        # shutdown() waits for serve_forever() to return: not from this thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"stand-in store ready on 127.0.0.1:{port}")
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    print("stand-in store stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
