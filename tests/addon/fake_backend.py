"""A stand-in for `likeness serve` for unit tests of the client only (the product path uses the real backend).

Behaviour is picked by $FAKE_BACKEND_MODE:
  ok            speaks protocol 1: hello, reconstruct (2 progress lines then a result), cancel, shutdown
  protocol2     announces protocol 2
  garbage       writes a line that is not JSON first
  crash         crashes with exit code 3 after the first progress line of a reconstruct
  stubborn      ignores shutdown, end of input and SIGTERM (the client must kill it)
"""

import json
import os
import signal
import sys
import time

MODE = os.environ.get("FAKE_BACKEND_MODE", "ok")


def say(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main():
    print(f"fake backend {MODE} started with {sys.argv[1:]}", file=sys.stderr, flush=True)
    if MODE == "garbage":
        print("Hello from a native library", flush=True)
    say({"type": "ready", "protocol": 2 if MODE == "protocol2" else 1, "backend_version": "9.9.9",
         "python": "3.11.0", "pid": os.getpid()})
    if MODE == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for line in sys.stdin:
        request = json.loads(line)
        rid, op = request["id"], request["op"]
        if op == "hello":
            say({"id": rid, "type": "result", "result": {"protocol": 1, "backend_version": "9.9.9",
                                                          "python": "3.11.0", "models": {"ict": "installed"}}})
        elif op == "reconstruct":
            say({"id": rid, "type": "progress", "stage": "load", "fraction": 0.1, "message": "Loading"})
            if MODE == "crash":
                os._exit(3)
            print("not json in the middle of a job", flush=True)
            say({"id": rid, "type": "progress", "stage": "fit", "fraction": 0.5, "message": "Fitting"})
            say({"id": rid, "type": "result", "result": {"bundle": request["params"]["output"], "warnings": []}})
        elif op == "cancel":
            say({"id": rid, "type": "result", "result": {"cancelled": False}})
        elif op == "shutdown" and MODE != "stubborn":
            say({"id": rid, "type": "result", "result": {}})
            return 0
    while MODE == "stubborn":
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
