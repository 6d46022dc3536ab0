#!/usr/bin/env python3
"""Writes layout/hot-text.ld: the functions `pm start` runs, placed together.

The kernel maps a binary's code 64 KiB at a time around each page that is
run, so an idle pm's RSS counts every 64 KiB window that holds one function
it ran. Those functions are a fifth of the code, but spread over most of it.
build.rs hands this script to the linker, which places them in one section
(`.text.hot`) ahead of the rest: the same code, fewer windows mapped.

How the list is made: the release binary runs `pm start` on 50 instances,
through its startup, some output, an idle while and a Ctrl-C, twice:
- under valgrind's callgrind, which names every function it enters;
- natively, with layout/trace.c preloaded, which records the first function
  run on each page of code, with stdout a file, a pipe and a terminal. That
  catches paths only a native run takes.
Each function is written as a pattern:
- its name with the hash wildcarded, when that pattern matches no other
  function of the binary (so it keeps working after a toolchain or
  dependency update changes the hashes);
- its exact name otherwise (a generic's instances share a name and differ by
  hash only; wildcarded, every instance would come along).
A stale exact name matches nothing and costs nothing: the function is then
just placed with the rest. Re-run this after a toolchain or dependency
update, or when benches' `rss` row says idle RSS grew:

    cargo build --release && python3 layout/generate.py

Run it on a binary built with the current list: a function the list already
places is found on the pages it ran from. Needs valgrind (Debian:
`apt-get install valgrind`), gcc, and binutils' nm and readelf.
"""

import collections
import os
import pty
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "pm")
OUT = os.path.join(ROOT, "layout", "hot-text.ld")
PROCFILE = "quiet: exec sleep 1000\ntalk: echo ready; echo a second line; exec sleep 1000\n"
FORMATION = ["quiet=48", "talk=2"]
# What neither run can see: the code a cloned child runs in pm's memory
# before it execs (callgrind does not follow it, and the tracer must give
# the code back around clone(), or the child, whose signals are blocked,
# would die of the first fault).
ALWAYS = ["_ZN2pm7process12launch_linux*"]


def text_symbols(binary):
    """Every function of the binary: mangled name -> size."""
    out = subprocess.run(
        ["nm", "-S", "--defined-only", binary], check=True, capture_output=True, text=True
    ).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("t", "T"):
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def run_pm(dir, prefix, env=None, stdout="file"):
    """Runs `pm start` in `dir` (behind `prefix`) until its instances have
    started and spoken, idles past the writer's idle second, then Ctrl-C.

    `stdout` is what pm writes to: a "file", a "pipe" or a "tty" (each takes
    a few paths of its own, and a user has any of them). pm leads a process
    group of its own, as a shell's job does."""
    with open(os.path.join(dir, "Procfile"), "w") as f:
        f.write(PROCFILE)
    cmd = [*prefix, BINARY, "start", "--color", "never", *FORMATION]
    log_path = os.path.join(dir, "out.log")
    with open(log_path, "wb") as log:
        copier = None
        if stdout == "file":
            pm = subprocess.Popen(cmd, cwd=dir, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, env=env, process_group=0)
        else:
            if stdout == "tty":
                source, sink = pty.openpty()
            else:
                source, sink = os.pipe()
            pm = subprocess.Popen(cmd, cwd=dir, stdin=subprocess.DEVNULL, stdout=sink,
                                  stderr=subprocess.STDOUT, env=env, process_group=0)
            os.close(sink)

            def copy():
                while True:
                    try:
                        data = os.read(source, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    log.write(data)
                    log.flush()
                os.close(source)

            copier = threading.Thread(target=copy)
            copier.start()
        # valgrind is slow to start 50 instances.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(log_path, "rb") as f:
                if f.read().count(b"a second line") >= 2:
                    break
            time.sleep(0.2)
        else:
            pm.kill()
            sys.exit(f"generate.py: {' '.join(cmd)} did not start its instances in 60 s")
        time.sleep(2)
        pm.send_signal(signal.SIGINT)
        pm.wait(timeout=60)
        if copier:
            copier.join()


def functions_run():
    """The mangled names of the functions `pm start` entered, in the order
    callgrind first names them."""
    with tempfile.TemporaryDirectory() as dir:
        profile = os.path.join(dir, "callgrind.out")
        run_pm(dir, ["valgrind", "--tool=callgrind", "--demangle=no",
                     f"--callgrind-out-file={profile}"])
        names = []
        seen = set()
        with open(profile) as f:
            for line in f:
                m = re.match(r"^c?fn=\(\d+\) (.+)$", line.strip())
                if m and m.group(1) not in seen:
                    seen.add(m.group(1))
                    names.append(m.group(1))
        return names


def code_segment(binary):
    """The virtual address where the binary's code mapping starts."""
    out = subprocess.run(["readelf", "-lW", binary], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["LOAD"] and "E" in parts[6:-1]:
            return int(parts[2], 16) & ~0xFFF
    sys.exit("generate.py: no executable LOAD segment in " + binary)


def functions_run_natively():
    """Functions a native `pm start` runs, with its stdout a file, a pipe and
    a terminal: for each page of code it runs, the function it entered the
    page in. (Others on the page may have run too: each run of this script
    places the ones it found, so the next one finds the next.)"""
    offsets = set()
    for stdout in ("file", "pipe", "tty"):
        with tempfile.TemporaryDirectory() as dir:
            tracer = os.path.join(dir, "trace.so")
            subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", tracer,
                            os.path.join(ROOT, "layout", "trace.c"), "-ldl"], check=True)
            pages_path = os.path.join(dir, "pages")
            env = dict(os.environ, LD_PRELOAD=tracer, TRACE_BINARY=os.path.realpath(BINARY),
                       TRACE_OUT=pages_path)
            run_pm(dir, [], env, stdout)
            with open(pages_path) as f:
                offsets |= {int(line, 16) for line in f if line.strip()}
    offsets = sorted(offsets)
    base = code_segment(BINARY)
    out = subprocess.run(["nm", "-S", "-n", "--defined-only", BINARY],
                         check=True, capture_output=True, text=True).stdout
    functions = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("t", "T"):
            functions.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    names = []
    for offset in offsets:
        at = base + offset
        for start, size, name in functions:
            if start <= at < start + size:
                names.append(name)
    return names


def wildcarded(name):
    """The name with what a rebuild may change replaced by `*`: the legacy
    hash (and any `.llvm.N` suffix after it), the v0 crate disambiguators."""
    if name.startswith("_R"):
        return re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", name) + "*"
    return re.sub(r"17h[0-9a-f]{16}E.*$", "17h*", name)


def main():
    sizes = text_symbols(BINARY)
    ran = []
    for name in functions_run() + functions_run_natively():
        if name in sizes and name not in ran:
            ran.append(name)
    shared = collections.Counter(wildcarded(name) for name in sizes)
    lines = []
    for name in ran:
        pattern = wildcarded(name)
        lines.append(pattern if shared[pattern] == 1 else name)
    hot = sum(sizes[name] for name in ran)
    with open(OUT, "w") as f:
        f.write("/* Generated by layout/generate.py: the functions `pm start` runs, first.\n")
        f.write(f"   {len(ran)} functions, {hot} bytes of {sum(sizes.values())}. */\n")
        f.write("SECTIONS {\n  .text.hot : {\n")
        for pattern in ALWAYS:
            f.write(f"    *(.text.{pattern} .text.unlikely.{pattern})\n")
        for line in lines:
            # A function LLVM deems cold (`main`, run once) has its section
            # named `.text.unlikely.NAME`.
            f.write(f"    *(.text.{line} .text.unlikely.{line})\n")
        f.write("  }\n} INSERT BEFORE .text;\n")
    print(f"{OUT}: {len(ran)} functions, {hot // 1024} KiB of {sum(sizes.values()) // 1024} KiB")


if __name__ == "__main__":
    main()
