"""Credential groups beyond ``dripline``: the reference's ``add_auth_spec`` hook.

In the reference, dl-serve hands a scarab ``MainApp`` to ``BaseAddAuthSpec(app)`` (which adds the
``postgres`` group) or, when a plugin provides the module ``dripline.extensions.add_auth_spec``, to
that module's ``AddAuthSpec(app)``, a subclass that adds more groups, e.g.::

    class AddAuthSpec(dripline.implementations.BaseAddAuthSpec):
        def __init__(self, app):
            dripline.implementations.BaseAddAuthSpec.__init__(self, app)
            app.add_default_auth_spec_group(
                "slack", scarab.to_param({"dripline": {"default": "x", "env": "SLACK_TOKEN"}}).as_node())

There is no MainApp here: `AuthSpecCollector` offers the one call such hooks make and collects the
groups in the format `dripline.assembly.config.build_authentication(extra_groups=...)` takes,
``{group: {item: {"default": ..., "env": ...}}}``. `dripline.assembly.plugins.auth_groups()` runs the hook.
"""
from __future__ import annotations

import copy
import logging
from typing import Any

__all__ = ["BaseAddAuthSpec", "AuthSpecCollector", "add_postgres_auth_spec", "postgres_auth_spec"]

logger = logging.getLogger(__name__)


def postgres_auth_spec() -> dict[str, dict[str, str]]:
    """The ``postgres`` group: username/password, defaults postgres/postgres, env POSTGRES_USER /
    POSTGRES_PASSWORD (reference §6.8)."""
    from dripline.settings.auth import POSTGRES_AUTH_SPEC
    return copy.deepcopy(POSTGRES_AUTH_SPEC["postgres"])


class AuthSpecCollector:
    """Stands in for the scarab ``MainApp`` an ``AddAuthSpec(app)`` hook is given.

    ``groups`` holds what the hook added, ready for ``build_authentication(extra_groups=...)``.
    """

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}

    def add_default_auth_spec_group(self, name: str, spec: Any) -> None:
        """Add (or replace) credential group `name`; `spec` is ``{item: {"default", "env"}}`` as a
        dict or a scarab ParamNode."""
        from scarab import to_python
        spec = to_python(spec)
        if not isinstance(name, str) or not name:
            raise TypeError(f"an authentication group name must be a non-empty string, not {name!r}")
        if not isinstance(spec, dict):
            raise TypeError(f"authentication group {name!r} must be a mapping of items, "
                            f"not {type(spec).__name__}")
        self.groups[name] = spec
        logger.debug("added auth spec group %s", name)

    # the scarab name some reference code uses for the same thing
    add_auth_spec_group = add_default_auth_spec_group


class BaseAddAuthSpec:
    """Adds the credential groups of dripline's own implementations (``postgres``) to `app`.

    Plugins subclass it (module ``dripline.extensions.add_auth_spec``, class ``AddAuthSpec``),
    call ``BaseAddAuthSpec.__init__(self, app)`` and add their own groups.
    """

    def __init__(self, app: Any) -> None:
        self.add_postgres_auth_spec(app)

    def add_postgres_auth_spec(self, app: Any) -> None:
        add_postgres_auth_spec(app)


def add_postgres_auth_spec(app: Any) -> None:
    """Reference free function: add the ``postgres`` group to `app`."""
    app.add_default_auth_spec_group("postgres", postgres_auth_spec())
