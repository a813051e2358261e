"""Build configuration for pyswoole's C extensions: shared-memory primitives, the HTTP request
parser (llhttp, vendored in pyswoole/http/vendor/llhttp) and the fields of a parsed request, the
per-read path of HTTP connections and the common case of their responses, and one step of a
coroutine without StopIteration (the coroutine runner)."""

from setuptools import Extension, setup

LLHTTP = "pyswoole/http/vendor/llhttp"

REQUEST_H = "pyswoole/protocol/_request.h"  # the fields of a parsed request, shared by three modules
RESPONSE_H = "pyswoole/http/_response.h"  # the fields of a response, shared by two
HEAP_TYPE_H = "pyswoole/_heap_type.h"  # the dealloc of the C modules' heap types
RUNNER_STATE_H = "pyswoole/coroutine/_runner_state.h"  # the coroutine runner's state, shared by three


def c_extension(name: str, sources: list[str], **options: object) -> Extension:
    """A C extension of the package, built with the same flags as the others."""
    return Extension(name, sources=sources, extra_compile_args=["-O2", "-std=gnu11"], **options)


setup(
    ext_modules=[
        c_extension("pyswoole.shm._shm", ["pyswoole/shm/_shm.c"], libraries=["pthread"]),
        c_extension("pyswoole.protocol._websocket", ["pyswoole/protocol/_websocket.c"]),
        c_extension(
            "pyswoole.protocol._request", ["pyswoole/protocol/_request.c"], depends=[REQUEST_H, HEAP_TYPE_H]
        ),
        c_extension(
            "pyswoole.http._parser",
            [
                "pyswoole/http/_parser.c",
                f"{LLHTTP}/src/api.c",
                f"{LLHTTP}/src/http.c",
                f"{LLHTTP}/src/llhttp.c",
            ],
            include_dirs=[f"{LLHTTP}/include"],
            depends=[REQUEST_H, HEAP_TYPE_H],
        ),
        c_extension(
            "pyswoole.coroutine._step", ["pyswoole/coroutine/_step.c"], depends=[HEAP_TYPE_H, RUNNER_STATE_H]
        ),
        c_extension(
            "pyswoole.http._response",
            ["pyswoole/http/_response.c"],
            depends=[REQUEST_H, RESPONSE_H, HEAP_TYPE_H, RUNNER_STATE_H],
        ),
        c_extension(
            "pyswoole.asgi._cycle",
            ["pyswoole/asgi/_cycle.c"],
            depends=[REQUEST_H, RESPONSE_H, HEAP_TYPE_H, RUNNER_STATE_H],
        ),
    ]
)
