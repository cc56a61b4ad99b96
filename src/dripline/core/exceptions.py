"""Reference-era module path: `dripline.core.exceptions` is `dripline.protocol.errors`.

Kept so plugins written for dripline-python 5 import unchanged; the alias makes both names one
module object, so attribute reads and writes reach the real one.
"""
import sys

from dripline.protocol import errors as _module

sys.modules[__name__] = _module
