"""Build configuration for pyswoole's C extension (shared-memory primitives)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pyswoole.shm._shm",
            sources=["pyswoole/shm/_shm.c"],
            extra_compile_args=["-O2", "-std=gnu11"],
            libraries=["pthread"],
        )
    ]
)
