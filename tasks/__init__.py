"""Built-in tasks: every module and family subpackage in this folder is imported and registers itself.

A task family keeps its task, data (assets and readers), index and metrics together: one module
(``perplexity``) or one subpackage (``retrieval/``, ``imagenet/``, ``zeroshot/``).
"""

from sparsebench.discovery import import_all

import_all(__name__, __path__)
