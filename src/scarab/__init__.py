"""scarab: the small part of the scarab C++ utility library that dripline plugins import.

Plugins written for the reference import ``scarab`` for ``VersionSemantic`` (their ``version``
attribute) and sometimes for the ``Param`` family, which the reference used for payloads. Here
payloads are plain Python data; ``Param`` objects are a thin, convertible view for old code, and
:func:`to_python` accepts either, so code may call it without knowing which it holds.
"""
from __future__ import annotations

from .cancel import Cancelable, SignalHandler
from .param import Param, ParamArray, ParamNode, ParamValue, to_param, to_python
from .verbosity import s2py_verbosity
from .version_semantic import VersionSemantic

__all__ = ["VersionSemantic", "Param", "ParamValue", "ParamNode", "ParamArray", "to_param",
           "to_python", "SignalHandler", "Cancelable", "s2py_verbosity"]
