"""Importers: every capture format into the canonical Arrow tables of :mod:`importers.schema`."""

from importers.capture import Capture, CaptureMetadata
from importers.detect import load

__all__ = ["Capture", "CaptureMetadata", "load"]
