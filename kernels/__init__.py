"""Built-in kernels: every module in this folder is imported and registers itself."""

from sparsebench.discovery import import_all

# With the repository root on sys.path (``python -m pytest``), this folder is also importable
# as the top-level ``kernels`` - the name of Hugging Face's kernels package, which transformers
# probes at import time. Register only under the real package name, never twice.
if __name__ == "sparsebench.kernels":
    import_all(__name__, __path__)
