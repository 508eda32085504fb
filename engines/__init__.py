"""Vision engines: classical (OpenCV) now; SAM, DeAOT and E2FGVI ports later. Never imports stream's runtime
(only ``stream.errors`` for the shared error family)."""
