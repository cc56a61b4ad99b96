"""Reference-era module path: `dripline.core.return_codes` is `dripline.protocol.return_codes`.

Kept so plugins written for dripline-python 5 import unchanged; the alias makes both names one
module object, so attribute reads and writes reach the real one.
"""
import sys

from dripline.protocol import return_codes as _module

sys.modules[__name__] = _module
