"""How much of a commit gitops reads before it calls the commit a problem.

Every file in a config repo is hostile input: a commit must render in bounded time and memory
whatever it holds. Each limit is at least what Kubernetes itself accepts where Kubernetes has
one (so no object the API server would take is refused here), and otherwise far above any real
config repo while still bounding the work. Past a limit, the file gets a `path:line` problem.
"""
from __future__ import annotations

MIB = 1024 * 1024

# The API server refuses a request body over 3 MiB (DefaultMaxRequestSizeBytes in
# k8s.io/apiserver), and etcd an object over 1.5 MiB: no object can be bigger than this as the
# JSON that is sent, so an object (a document, or one item of a List) past it can never be applied.
MAX_OBJECT_JSON_BYTES = 3 * MIB

# A file may hold many objects (a `List`, or a stream of documents), and YAML's indentation and
# comments make a document larger than its JSON: ten of the largest objects the API server takes.
MAX_FILE_BYTES = 32 * MIB

# All the manifest files of one commit together. The benchmark's 10,000 objects are 2 MiB; this
# is 30 times that (some 300,000 small objects), and bounds what the parse may hold in memory.
MAX_COMMIT_BYTES = 64 * MIB

# The JSON the parse hands back for a whole commit (aliases can make it larger than the YAML),
# past which the commit is refused rather than held in memory: twice the commit's input limit.
MAX_COMMIT_JSON_BYTES = 2 * MAX_COMMIT_BYTES

# Kubernetes' JSON decoders (encoding/json's scanner, sigs.k8s.io/json, and
# k8s.io/apimachinery/pkg/util/json's number conversion) all stop at 10,000 nested arrays and
# objects ("exceeded max depth"), and go-yaml v2 at 10,000 flow or indentation levels: the same
# depth is accepted here, counting the document's own mapping as 1.
MAX_DEPTH = 10_000

# What the engine can apply is shallower: the Pulumi Python SDK serializes each object to protobuf
# by recursion, Python frames per level, and a program past Python's recursion limit dies with a
# traceback part-way through registering the commit's resources (measured on the real engine: 302
# levels applied, 702 not). An object nested deeper is a validation problem at its line instead,
# so the commit changes nothing. The deepest real objects (CRD schemas embedding a pod template)
# are under a hundred levels.
MAX_APPLIED_DEPTH = 256

# go-yaml v2 refuses "excessive aliasing" (a billion-laughs bomb) by a ratio: alias expansion may
# make up 99% of a document's decoded nodes up to 400,000 nodes, falling to 10% at 4,000,000.
# The same rule is applied here, with go-yaml's own numbers, so exactly what kubectl accepts passes.
ALIAS_RATIO_RANGE_LOW = 400_000
ALIAS_RATIO_RANGE_HIGH = 4_000_000

# Kubernetes has no count of documents; these bound the per-document work (empty documents and
# comment-only ones cost a parse too). 100,000 in a file is some 300 bytes a document at the file
# limit; 200,000 in a commit is twenty times the benchmark's 10,000 objects and above the 150,000
# pods of Kubernetes' largest tested clusters.
MAX_DOCUMENTS_PER_FILE = 100_000
MAX_DOCUMENTS_PER_COMMIT = 200_000

# The parse runs in a child process with these limits, so that even a crash of the C parser is
# only a problem of the file it was on. Address space: the largest file's objects (files are read
# one at a time, about 30 bytes of Python objects per byte of YAML: some 1 GiB at MAX_FILE_BYTES;
# measured 300 MiB peak for a 30 MiB file of 100,000 documents), its JSON, the interpreter and a
# thread stack deep enough for MAX_DEPTH.
CHILD_ADDRESS_SPACE_BYTES = 4096 * MIB
# Stack of the child's parsing thread: C-level recursion of the JSON encoder and decoder at
# MAX_DEPTH needs a few MiB; the default 8 MiB of a main thread would be near its edge.
CHILD_STACK_BYTES = 256 * MIB

# Time. Starting the child and matching `.gitopsignore` (thousands of paths against hundreds of
# patterns take well under a second) must be done in this; only a pattern that makes Python's
# regex engine backtrack takes longer.
IGNORE_TIMEOUT_S = 20.0
# Parsing: the benchmark's 2 MiB take about 0.7 s on one core; the slowest inputs allowed by the
# limits above (many tiny documents, alias expansion at go-yaml's ratio) stay within a few
# seconds per MiB. Wall clock and CPU time in the child alike.
PARSE_TIMEOUT_BASE_S = 60.0
PARSE_TIMEOUT_PER_MIB_S = 5.0


def parse_timeout_s(input_bytes: int) -> float:
    """Seconds the parse of `input_bytes` of manifests may take before it is called a hang."""
    return PARSE_TIMEOUT_BASE_S + PARSE_TIMEOUT_PER_MIB_S * input_bytes / MIB


def allowed_alias_ratio(decode_count: int) -> float:
    """go-yaml v2's allowedAliasRatio: the share of decoded nodes that may come from aliases."""
    if decode_count <= ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decode_count >= ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    span = ALIAS_RATIO_RANGE_HIGH - ALIAS_RATIO_RANGE_LOW
    return 0.99 - 0.89 * (decode_count - ALIAS_RATIO_RANGE_LOW) / span


def excessive_aliasing(alias_count: int, decode_count: int) -> bool:
    """go-yaml v2's check, made at every decoded node."""
    return (alias_count > 100 and decode_count > 1000
            and alias_count / decode_count > allowed_alias_ratio(decode_count))
