"""Reference-era module path: `dripline.core.object_creator` is `dripline.assembly.objects`.

Kept so plugins written for dripline-python 5 import unchanged; the alias makes both names one
module object, so attribute reads and writes reach the real one.
"""
import sys

from dripline.assembly import objects as _module

sys.modules[__name__] = _module
