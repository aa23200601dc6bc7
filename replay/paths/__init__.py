"""The engine's two ways of replaying one scenario over a prepared :class:`replay.work.Work`.

:mod:`replay.paths.reference` steps the vPMU model through every scheduling event (obviously
faithful, microseconds per piece); :mod:`replay.paths.vectorized` probes the model once per CPU
and applies the history with polars (for real traces). Both return the same observations; a
differential test holds them equal. :mod:`replay.engine` chooses between them.
"""
