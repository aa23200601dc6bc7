"""ftrace **text**: the kernel's ``trace``/``trace_pipe``, ``trace-cmd report``, systrace HTML.

Where the text comes from (files, HTML, zips, JS strings: :mod:`~importers.ftrace.source`),
the byte scanners (:mod:`~importers.ftrace.scan`), the line tokenizer
(:mod:`~importers.ftrace.lines`), the payload grammars of the modelled events
(:mod:`~importers.ftrace.payloads`, :mod:`~importers.ftrace.fields`), and the importer that
puts them together (:mod:`~importers.ftrace.text`). ``perf script`` text reuses the grammars.
"""

from importers.ftrace.text import read_ftrace_text

__all__ = ["read_ftrace_text"]
