"""The PandaDoc emulator's own tests.

A package, so that its conftest is imported as emulator.conftest and never shadows
tests/conftest.py, which other test modules import as ``conftest``.
"""
