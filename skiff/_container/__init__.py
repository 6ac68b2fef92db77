"""The in-container runtime: ``python -m skiff._container``.

It depends on the standard library and cloudpickle only, so it runs inside any image
without fighting the user's own package pins.
"""
