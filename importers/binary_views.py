"""Arrow ``string_view`` / ``binary_view`` structs of byte ranges, built in numpy.

A view array holds 16 bytes per row (Arrow's columnar format, "Variable-size Binary View
Layout"): the length (int32), then the bytes themselves when there are at most
:data:`INLINE` of them, else their first 4 bytes, the index of the data buffer they lie in and
their offset there (int32 each). The importers describe ranges of a chunk or of ring-buffer
pages this way and let Arrow copy the bytes out in C++ (a cast to ``string`` or
``large_binary``): the text scanners' numpy twins (:mod:`importers.ftrace.scan_np`) and the
``events`` payload of trace.dat and perf.data (:mod:`importers.tracedat.payload`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from importers.tracefs.fields import gather_word

#: bytes a view holds itself (Arrow's ``BinaryViewType::kInlineSize``)
INLINE = 12
#: a view's offset is an int32: ranges are addressed within data buffers this large, buffer
#: ``k`` starting at byte ``k * WINDOW`` (a range starting below 2 GiB is in buffer 0)
WINDOW = 1 << 31


def binary_views(
    data: NDArray[np.uint8], start: NDArray[np.int64], length: NDArray[np.int64]
) -> NDArray[np.uint32]:
    """The view of each range ``data[start[i] : start[i] + length[i]]``, as four
    little-endian words, ``(rows, 4)``. A range of length 0 (a null's) is all zeros."""
    out = np.empty((len(start), 4), "<u4")
    out[:, 0] = length
    out[:, 1] = gather_word(data, start, 0, 4, big=False)  # kept by ranges past INLINE only
    out[:, 2] = start // WINDOW
    out[:, 3] = start % WINDOW
    short = np.flatnonzero(length <= INLINE)
    inline = np.zeros((len(short), INLINE), np.uint8)
    for t in range(INLINE):
        held = np.flatnonzero(length[short] > t)
        inline[held, t] = data[start[short[held]] + t]
    out[short, 1:] = inline.view("<u4")
    return out
