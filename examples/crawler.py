"""Port of ``crawler.php``: a fork-based image crawler.

One child per topic page (the URLs on the command line; the original's three ``www.nipic.com`` topic
pages by default). Each child fetches its page, follows every link whose element has the class
``search-works-thumb``, and on each detail page collects the absolute URL of every image with the id
``J_worksImg``. It prints what it found the way PHP's ``print_r`` shows ``[<child pid> => [urls...]]``
and exits; only URLs are printed, nothing is downloaded. The parent waits for every child, then prints
``Done``.

Parsing uses the standard library's ``html.parser``. Fixes and changes: the URLs are configurable (the
original's host is hard-coded); a page that fails to load is reported on stderr and skipped instead of
killing the child; each child prints its whole report in one write, so reports of parallel children
never interleave; ``--timeout`` bounds every request.
"""

from __future__ import annotations

# Run as a script, this file's folder comes first on sys.path, where other examples (e.g. an
# ``http.py``) would hide standard modules that urllib needs. Drop it before importing anything else.
import os
import sys

sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import urllib.request  # noqa: E402
from html.parser import HTMLParser  # noqa: E402
from urllib.parse import urljoin  # noqa: E402

DEFAULT_URLS = [
    "http://www.nipic.com/topic/show_27192_1.html",
    "http://www.nipic.com/topic/show_27054_1.html",
    "http://www.nipic.com/topic/show_27085_1.html",
]


class Collector(HTMLParser):
    """Collects ``attribute`` of the elements that match ``selector`` (``.class`` or ``#id``)."""

    def __init__(self, selector: str, attribute: str) -> None:
        super().__init__()
        self.kind, self.name = selector[0], selector[1:]
        self.attribute = attribute
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if self.kind == "." and self.name in (attributes.get("class") or "").split():
            matched = True
        else:
            matched = self.kind == "#" and attributes.get("id") == self.name
        value = attributes.get(self.attribute)
        if matched and value:
            self.found.append(value)


def select(url: str, selector: str, attribute: str, timeout: float) -> list[str]:
    """Absolute URLs from ``attribute`` of the elements of page ``url`` that match ``selector``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        charset = response.headers.get_content_charset() or "utf-8"
        html = response.read().decode(charset, errors="replace")
    collector = Collector(selector, attribute)
    collector.feed(html)
    return [urljoin(url, value) for value in collector.found]


def crawl(topic_url: str, timeout: float) -> list[str]:
    images: list[str] = []
    try:
        details = select(topic_url, ".search-works-thumb", "href", timeout)
    except OSError as exc:
        print(f"{topic_url}: {exc}", file=sys.stderr)
        return images
    for detail_url in details:
        try:
            images.extend(select(detail_url, "#J_worksImg", "src", timeout))
        except OSError as exc:
            print(f"{detail_url}: {exc}", file=sys.stderr)
    return images


def print_r(data: dict[int, list[str]]) -> str:
    """PHP's ``print_r`` of ``[key => [values...]]``."""
    lines = ["Array", "("]
    for key, values in data.items():
        lines += [f"    [{key}] => Array", "        ("]
        lines += [f"            [{index}] => {value}" for index, value in enumerate(values)]
        lines += ["        )", ""]
    lines.append(")")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="*", default=DEFAULT_URLS, help="topic pages (default: the original's)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    args = parser.parse_args()

    children = []
    for url in args.urls:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                images = crawl(url, args.timeout)
                os.write(1, print_r({os.getpid(): images} if images else {}).encode())
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    print("Done")


if __name__ == "__main__":
    main()
