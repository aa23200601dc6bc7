"""The protobuf wire format's constants and the array types of its decoders.

They live apart from :mod:`~importers.perfetto.wire` so that the compiled loops
(:mod:`~importers.perfetto.kernels`, :mod:`~importers.perfetto.bundle_kernels`), which
:mod:`~importers.perfetto.wire` imports when first called, need nothing from it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
I64 = NDArray[np.int64]
U64 = NDArray[np.uint64]

#: wire types (protobuf.dev/programming-guides/encoding)
VARINT, I64_WIRE, LEN, I32_WIRE = 0, 1, 2, 5
#: the largest field number protobuf allows (2**29 - 1): a larger key is damage
MAX_FIELD = (1 << 29) - 1
#: a message with no damage
INTACT = -1
