# Exists only to wire the cffi extension; all metadata lives in pyproject.toml.
from setuptools import setup

setup(
    cffi_modules=["csrc/build_sampler.py:ffi"],
    # cffi builds the extension against the stable ABI (abi3): one wheel
    # serves every CPython from requires-python's minimum on, so it is
    # tagged cp311-abi3 rather than for the building interpreter only.
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
