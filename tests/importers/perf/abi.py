"""perf.data ABI numbers for the test builder, written out here from the kernel and perf sources
(not taken from the importer, so that a wrong bit in the importer's tables breaks the tests).

* ``PERF_SAMPLE_*``, the ``perf_event_attr`` flag bits and ``PERF_RECORD_*`` kernel record
  types: ``include/uapi/linux/perf_event.h`` (enum perf_event_sample_format, the bitfield after
  ``read_format`` in struct perf_event_attr, enum perf_event_type);
* perf's own record types: ``tools/lib/perf/include/perf/event.h`` (enum perf_user_event_type).

:func:`tests.importers.perf.test_abi` checks them against the installed uapi header.
"""

from __future__ import annotations

# enum perf_event_sample_format
PERF_SAMPLE = {
    "IP": 0x1,
    "TID": 0x2,
    "TIME": 0x4,
    "ADDR": 0x8,
    "READ": 0x10,
    "CALLCHAIN": 0x20,
    "ID": 0x40,
    "CPU": 0x80,
    "PERIOD": 0x100,
    "STREAM_ID": 0x200,
    "RAW": 0x400,
    "BRANCH_STACK": 0x800,
    "REGS_USER": 0x1000,
    "STACK_USER": 0x2000,
    "WEIGHT": 0x4000,
    "DATA_SRC": 0x8000,
    "IDENTIFIER": 0x10000,
    "TRANSACTION": 0x20000,
    "REGS_INTR": 0x40000,
    "PHYS_ADDR": 0x80000,
    "AUX": 0x100000,
    "CGROUP": 0x200000,
    "DATA_PAGE_SIZE": 0x400000,
    "CODE_PAGE_SIZE": 0x800000,
    "WEIGHT_STRUCT": 0x1000000,
}

# struct perf_event_attr, the u64 of bitfields after read_format (bit = position in it)
ATTR_FLAG = {
    "disabled": 1 << 0,
    "freq": 1 << 10,
    "precise_ip": 1 << 15,  # two bits wide
    "sample_id_all": 1 << 18,
    "exclude_host": 1 << 19,
    "exclude_guest": 1 << 20,
    "context_switch": 1 << 26,
}

# enum perf_event_type
PERF_RECORD_LOST = 2
PERF_RECORD_COMM = 3
PERF_RECORD_READ = 8
PERF_RECORD_SAMPLE = 9
PERF_RECORD_LOST_SAMPLES = 13
PERF_RECORD_SWITCH = 14
PERF_RECORD_SWITCH_CPU_WIDE = 15
# enum perf_user_event_type
PERF_RECORD_HEADER_ATTR = 64
PERF_RECORD_HEADER_TRACING_DATA = 66
PERF_RECORD_FINISHED_ROUND = 68
PERF_RECORD_AUXTRACE = 71
PERF_RECORD_HEADER_FEATURE = 80
PERF_RECORD_COMPRESSED = 81
PERF_RECORD_COMPRESSED2 = 83

# enum perf_event_read_format
PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
PERF_FORMAT_ID = 1 << 2
PERF_FORMAT_GROUP = 1 << 3
PERF_FORMAT_LOST = 1 << 4
