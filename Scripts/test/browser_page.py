#!/usr/bin/env python3
"""Opens one page in headless Chromium and waits, in real time, until a JavaScript condition holds.

Drives the browser over the DevTools protocol on a pipe (--remote-debugging-pipe: requests on fd 3,
answers and events on fd 4, each a JSON text ended by a NUL byte), so no port is opened and nothing
beyond the standard library is needed. Then it prints the page's DOM on stdout, saves a screenshot,
and writes every URL the page requested, one per line, to --requests.

  browser_page.py --chromium /usr/bin/chromium --url URL --until 'JS expression' \
      --screenshot out.png --requests urls.txt --timeout 60

Exits 0 when the condition held, 3 when it did not within --timeout (the DOM is printed anyway),
2 when the browser could not be driven.
"""

import argparse
import base64
import json
import os
import select
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self, chromium, flags):
        to_browser_read, self.to_browser = os.pipe()
        self.from_browser, from_browser_write = os.pipe()
        # The child gets the pipe ends as fds 3 and 4, which is where Chromium looks for them.
        # (Both are copied out of the way first, in case either already is fd 3 or 4.)
        def wire():
            reading, writing = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(reading, 3)
            os.dup2(writing, 4)
        self.process = subprocess.Popen(
            [chromium, "--remote-debugging-pipe", *flags, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, close_fds=True, pass_fds=(3, 4, to_browser_read, from_browser_write))
        os.close(to_browser_read)
        os.close(from_browser_write)
        self.buffer = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None, timeout=10.0):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self.receive(deadline)
            if reply is None:
                raise TimeoutError(f"no answer to {method} in {timeout:.0f} s")
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def receive(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed its end of the pipe")
            self.buffer += chunk
        text, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(text)

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--until", required=True, help="a JavaScript expression; waits until it is true")
    parser.add_argument("--screenshot")
    parser.add_argument("--requests")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--flag", action="append", default=[], help="one more Chromium flag")
    arguments = parser.parse_args()

    profile = tempfile.mkdtemp(prefix="browser-profile-")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", f"--user-data-dir={profile}", *arguments.flag]
    # A cold start can keep the browser from answering for a while, and one start in many never
    # answers at all: wait up to 30 s for its first answer, and start it afresh up to three times.
    browser = None
    targets = None
    for attempt in range(3):
        browser = Browser(arguments.chromium, flags)
        try:
            targets = browser.send("Target.getTargets", timeout=30)["targetInfos"]
            break
        except Exception as error:
            print(f"browser_page: start {attempt + 1}: {error}", file=sys.stderr)
            browser.process.kill()
            browser.process.wait(timeout=10)
    if targets is None:
        subprocess.run(["rm", "-rf", profile], check=False)
        return 2
    status = 2
    try:
        page = next(t for t in targets if t["type"] == "page")
        session = browser.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        browser.send("Network.enable", session=session)
        browser.send("Page.enable", session=session)
        browser.send("Page.navigate", {"url": arguments.url}, session=session)
        deadline = time.monotonic() + arguments.timeout
        status = 3
        while time.monotonic() < deadline:
            result = browser.send("Runtime.evaluate", {"expression": f"Boolean({arguments.until})", "returnByValue": True},
                                  session=session)
            if result.get("result", {}).get("value") is True:
                status = 0
                break
            time.sleep(0.2)
        if arguments.screenshot:
            shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session, timeout=30)
            with open(arguments.screenshot, "wb") as file:
                file.write(base64.b64decode(shot["data"]))
        dom = browser.send("Runtime.evaluate", {"expression": "document.documentElement.outerHTML", "returnByValue": True},
                           session=session)
        sys.stdout.write(dom.get("result", {}).get("value", ""))
        if arguments.requests:
            urls = [event["params"]["request"]["url"] for event in browser.events
                    if event.get("method") == "Network.requestWillBeSent"]
            with open(arguments.requests, "w") as file:
                file.write("".join(url + "\n" for url in urls))
    except Exception as error:
        print(f"browser_page: {error}", file=sys.stderr)
        status = 2
    finally:
        browser.close()
        subprocess.run(["rm", "-rf", profile], check=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
