"""Port of ``go_waitGroup.php``: a ``WaitGroup`` waits for two concurrent HTTPS requests.

Run: ``python3 examples/go_waitGroup.py [--url https://www.taobao.com/ --url https://www.mi360.cn/]
[--timeout 1]``. One coroutine starts a child per URL (``wg.add()`` each), every child GETs its URL
with the original's headers and records the status code, then ``wg.done()``; the parent waits
(``wg.wait()``) and prints the results, keyed by host in completion order, e.g.
``{'www.taobao.com': 200, 'www.mi360.cn': -1}``. Both requests run at the same time, so the total
is the slowest request, not the sum.

The children are plain functions using ``urllib`` (redirects not followed, as Swoole's client),
made concurrent by the runtime hooks. Status codes as Swoole's HTTP client: the HTTP status, or
-1 (connect/DNS failure), -2 (timeout), -3 (server reset). Fixes: the URLs are configurable (tests
point them at local servers); the key of the taobao request is its real host (the original writes
``www.taobao.cn``); the results go through the coroutines' own dict, not a by-reference capture.
"""

import argparse
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from pyswoole import coroutine as co
from pyswoole import runtime

HEADERS = {
    "User-Agent": "Chrome/49.0.2587.3",
    "Accept": "text/html;application/xml",
    "Accept-Encoding": "gzip",
}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object) -> None:
        return None


def status_of(url: str, timeout: float) -> int:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"Host": urlsplit(url).netloc, **HEADERS})
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return -2
        return -3 if isinstance(reason, ConnectionResetError) else -1
    except TimeoutError:
        return -2
    except ConnectionResetError:
        return -3
    except OSError:
        return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="URL to fetch (repeat; default: the original's two)")
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    urls = args.url or ["https://www.taobao.com/", "https://www.mi360.cn/"]
    runtime.enable_coroutine()

    def fetch(wg: co.WaitGroup, results: dict[str, int], url: str) -> None:
        results[urlsplit(url).hostname or url] = status_of(url, args.timeout)
        wg.done()

    def parent() -> None:
        wg = co.WaitGroup()
        results: dict[str, int] = {}
        for url in urls:
            wg.add()
            co.go(fetch, wg, results, url)
        co.await_(wg.wait())
        print(results, flush=True)

    co.run(parent)


if __name__ == "__main__":
    main()
