"""Build configuration for pyswoole's C extensions: shared-memory primitives, the HTTP request
parser (llhttp, vendored in pyswoole/http/vendor/llhttp) and the fields of a parsed request, the
per-read path of HTTP connections and the common case of their responses, and one step of a
coroutine without StopIteration (the coroutine runner)."""

from setuptools import Extension, setup

LLHTTP = "pyswoole/http/vendor/llhttp"

setup(
    ext_modules=[
        Extension(
            "pyswoole.shm._shm",
            sources=["pyswoole/shm/_shm.c"],
            extra_compile_args=["-O2", "-std=gnu11"],
            libraries=["pthread"],
        ),
        Extension(
            "pyswoole.protocol._websocket",
            sources=["pyswoole/protocol/_websocket.c"],
            extra_compile_args=["-O2", "-std=gnu11"],
        ),
        Extension(
            "pyswoole.protocol._request",
            sources=["pyswoole/protocol/_request.c"],
            extra_compile_args=["-O2", "-std=gnu11"],
        ),
        Extension(
            "pyswoole.http._parser",
            sources=[
                "pyswoole/http/_parser.c",
                f"{LLHTTP}/src/api.c",
                f"{LLHTTP}/src/http.c",
                f"{LLHTTP}/src/llhttp.c",
            ],
            include_dirs=[f"{LLHTTP}/include"],
            extra_compile_args=["-O2", "-std=gnu11"],
        ),
        Extension(
            "pyswoole.coroutine._step",
            sources=["pyswoole/coroutine/_step.c"],
            extra_compile_args=["-O2", "-std=gnu11"],
        ),
        Extension(
            "pyswoole.http._response",
            sources=["pyswoole/http/_response.c"],
            extra_compile_args=["-O2", "-std=gnu11"],
        ),
        Extension(
            "pyswoole.asgi._cycle",
            sources=["pyswoole/asgi/_cycle.c"],
            extra_compile_args=["-O2", "-std=gnu11"],
        ),
    ]
)
