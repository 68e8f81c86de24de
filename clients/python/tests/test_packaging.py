"""The installed package asks for the protobuf runtime its generated modules
run on: the major version they were generated for, and no older. Generated
code checks that at import (VersionError otherwise); a requirement wider than
that let pip keep a runtime that cannot import the package."""
import importlib.metadata
import inspect
import re

from lunamatch.v1 import rpc_pb2

GENCODE = re.compile(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,"
                     r"\s*(\d+),\s*(\d+),\s*(\d+)")


def version(text):
    return tuple(int(x) for x in text.split("."))


def test_protobuf_requirement_matches_the_generated_code():
    m = GENCODE.search(inspect.getsource(rpc_pb2))
    assert m is not None, "the generated code names no runtime version"
    gen = tuple(int(x) for x in m.groups())
    reqs = [r for r in importlib.metadata.requires("lunamatch")
            if re.match(r"protobuf\b", r)]
    assert len(reqs) == 1, reqs
    lower = re.search(r">=\s*([\d.]+)", reqs[0])
    upper = re.search(r"<\s*([\d.]+)", reqs[0])
    assert lower is not None and upper is not None, reqs[0]
    # Admits the generated version, nothing older, no other major.
    assert version(lower.group(1)) == gen
    assert version(upper.group(1)) == (gen[0] + 1,)
