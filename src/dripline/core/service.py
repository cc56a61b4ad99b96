"""Reference-era module path: `dripline.core.service` is `dripline.service.service`.

Kept so plugins written for dripline-python 5 import unchanged; the alias makes both names one
module object, so attribute reads and writes reach the real one.
"""
import sys

import dripline.assembly.objects  # noqa: F401  (builds `endpoints` mappings, as the reference's Service does)
from dripline.service import service as _module

sys.modules[__name__] = _module
