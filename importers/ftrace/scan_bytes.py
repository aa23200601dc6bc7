"""Byte codes, limits and array types of the text scanners, shared by the dispatcher
(:mod:`importers.ftrace.scan`), the numpy twins (:mod:`importers.ftrace.scan_np`,
:mod:`importers.ftrace.keys_np`) and the compiled kernels (:mod:`importers.ftrace.scan_jit`),
which must not import each other.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
Bools = npt.NDArray[np.bool_]
Offsets = I64 | I32  # byte offsets into a chunk
Views = npt.NDArray[np.uint8]  # (rows, 16): Arrow string_view structs
Text = bytes | memoryview  # a chunk of capture text (a view of the read buffer)

SPACE, TAB, DASH, COLON, DOT = 0x20, 0x09, 0x2D, 0x3A, 0x2E
LBRACKET, RBRACKET, LPAREN, RPAREN, PLUS = 0x5B, 0x5D, 0x28, 0x29, 0x2B
VALUE, TOKEN, COMM = 0, 1, 2  # kinds of key=value fields for find_keys

#: context numbers (pid, TGID, CPU) saturate here instead of wrapping: far beyond every column
#: type, so importers.ranges rejects them
SATURATED = 1 << 40
#: seconds of a "sec.frac" timestamp whose ns still fit in int64 (the regex path reports more)
MAX_SECONDS = (2**63 - 1) // 1_000_000_000 - 1
#: fields of the context scan whose strings scan_event_lines views: comm, flags, event
#: (start, end)
VIEWED_FIELDS = (0, 5, 10)
#: how many earlier lines with the same timestamp :func:`~importers.ftrace.scan.repeated_lines`
#: compares a line with
REPEAT_WINDOW = 64
U64_TOP_DIGIT = np.uint64(0xFFFFFFFFFFFFFFFF // 10)
INT64_MAX = np.uint64(2**63 - 1)
