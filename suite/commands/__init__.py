"""Extra CLI commands: each module here defines ``command`` (a click command or group).

Modules must keep heavy imports (torch, transformers) inside their functions so that
``sparsebench --help`` stays fast.
"""
