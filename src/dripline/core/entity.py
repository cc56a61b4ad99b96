"""Reference-era module path: `dripline.core.entity` is `dripline.service.entity`.

Kept so plugins written for dripline-python 5 import unchanged; the alias makes both names one
module object, so attribute reads and writes reach the real one.
"""
import sys

from dripline.service import entity as _module

sys.modules[__name__] = _module
