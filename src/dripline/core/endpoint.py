"""Reference-era module path: `dripline.core.endpoint` is `dripline.service.endpoint`.

Kept so plugins written for dripline-python 5 import unchanged; the alias makes both names one
module object, so attribute reads and writes reach the real one.
"""
import sys

from dripline.service import endpoint as _module

sys.modules[__name__] = _module
