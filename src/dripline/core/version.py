"""Reference-era module path: `dripline.core.version` is `dripline.client.identity`.

``add_version`` / ``get_version`` / ``get_versions`` / ``remove_version`` (the reference's names
for the table every message reports in ``sender_info.versions``) live with the process identity,
not in the pure protocol package; ``PROTOCOL_VERSION`` is readable here too. The alias makes both
names one module object, so attribute reads and writes reach the real one.
"""
import sys

from dripline.client import identity as _module

sys.modules[__name__] = _module
