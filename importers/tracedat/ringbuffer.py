"""Constants of the kernel's ring-buffer page header (``struct buffer_data_page``) and event
headers, shared by the numpy walk (:mod:`importers.tracedat.pages`) and the compiled one
(:mod:`importers.tracedat.pages_jit`), which must not import each other.
"""

from __future__ import annotations

#: ``commit`` bits that hold the page's data length (RB_MISSED_FLAGS are above them)
COMMIT_MASK = (1 << 27) - 1
#: RB_MISSED_EVENTS: events were lost before this page
MISSING_EVENTS = 1 << 31
#: RB_MISSED_STORED: the number lost is stored after the page's data
MISSING_STORED = 1 << 30
#: the top five timestamp bits a TIME_STAMP record keeps from the current time
TS_MSB = 0xF8 << 56

#: missed-events value for a page whose flag says events were lost but not how many
MISSED_UNKNOWN = -1
#: missed-events value for a page without the flag
MISSED_NONE = -2
