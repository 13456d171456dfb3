"""Built-in methods: every module in this folder is imported and registers itself."""

from sparsebench.discovery import import_all

import_all(__name__, __path__)
