"""`dripline.core.surface` is `dripline.service.surface` (the request surface: `expose`, `hide`).

Here so that `from dripline.core import expose, hide` resolves through dripline.core's lazy
export table, like every other public name; the alias makes both names one module object.
"""
import sys

from dripline.service import surface as _module

sys.modules[__name__] = _module
