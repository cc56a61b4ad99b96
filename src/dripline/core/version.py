"""Reference-era module path: `dripline.core.version` is `dripline.protocol.version`.

Kept so plugins written for dripline-python 5 import unchanged; the alias makes both names one
module object, so attribute reads and writes reach the real one.
"""
import sys

from dripline.protocol import version as _module

sys.modules[__name__] = _module
