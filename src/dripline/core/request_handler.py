"""Reference-era module path: `dripline.core.request_handler` is `dripline.service.dispatch`.

Kept so plugins written for dripline-python 5 import unchanged; the alias makes both names one
module object, so attribute reads and writes reach the real one.
"""
import sys

from dripline.service import dispatch as _module

sys.modules[__name__] = _module
