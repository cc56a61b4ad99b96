"""Plugin discovery (dripline.assembly.plugins) with plugins written into a temporary folder on sys.path.

Each test builds its own plugins (namespace packages and entry-point distributions) under tmp_path;
the `site` fixture puts that folder on sys.path, re-runs discovery, and undoes everything after.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest

import dripline
from dripline import plugins
from dripline.protocol.errors import ConfigError
from dripline.assembly.objects import create_object, find_class
from dripline.client.identity import get_version, get_versions

ENTITY = """
from dripline.implementations import KeyValueStore
__all__ = ["{cls}"]
class {cls}(KeyValueStore):
    pass
"""


class Site:
    """A folder on sys.path into which tests write plugins."""

    def __init__(self, root):
        self.root = root
        self.modules: list[str] = []

    def write(self, rel: str, text: str) -> str:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def namespace_plugin(self, name: str, init: str, **files: str) -> None:
        """dripline/extensions/<name>/ with __init__.py = `init` and more modules."""
        self.write("dripline/extensions/__init__.py",
                   "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
        self.write(f"dripline/extensions/{name}/__init__.py", init)
        for module, text in files.items():
            self.write(f"dripline/extensions/{name}/{module}.py", text)
        self.modules.append(f"dripline.extensions.{name}")

    def entry_point_dist(self, dist: str, version: str, entry_points: dict[str, str],
                         modules: dict[str, str], group: str = "dripline.extensions") -> None:
        """An installed distribution (a .dist-info folder) declaring entry points."""
        info = f"{dist.replace('-', '_')}-{version}.dist-info"
        self.write(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        self.write(f"{info}/entry_points.txt", f"[{group}]\n{lines}")
        for module, text in modules.items():
            self.write(module.replace(".", "/") + ".py", text)
            self.modules.append(module)

    def refresh(self) -> list:
        return plugins.discover(refresh=True)


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = str(tmp_path / "site")
    os.makedirs(root)
    s = Site(root)
    sys.path.append(root)
    yield s
    sys.path.remove(root)
    for pkg in (dripline, sys.modules["dripline.extensions"]):
        pkg.__path__[:] = [p for p in pkg.__path__ if not p.startswith(root)]
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in s.modules) or \
                (getattr(sys.modules[name], "__file__", None) or "").startswith(root):
            del sys.modules[name]
    plugins.discover(refresh=True)


def run_python(code: str, pythonpath: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


# --- namespace plugins ---------------------------------------------------------------------------

JITTERISH_INIT = """
import scarab
from .things import *
from .things import __all__ as _things
version = scarab.VersionSemantic(1, 4, 2)
version.package = "me/plug-a"
version.commit = "abc"
__all__ = ["version"] + _things
"""


def test_namespace_plugin_is_imported_attached_and_versioned(site):
    site.namespace_plugin("pluga", JITTERISH_INIT, things=ENTITY.format(cls="ThingA"))
    found = site.refresh()
    plugin = next(p for p in found if p.name == "pluga")
    assert plugin.ok and plugin.kind == "namespace"
    import dripline.extensions as ext
    assert ext.pluga is plugin.module
    assert find_class("ThingA") is plugin.module.ThingA
    assert get_versions()["dripline.extensions.pluga"] == {"version": "1.4.2", "commit": "abc",
                                                          "package": "me/plug-a"}
    # every message this process sends carries it (its identity is stamped at publish)
    from dripline.client.identity import sender_info_for
    from dripline.protocol.message import MsgAlert
    assert "dripline.extensions.pluga" in sender_info_for("x")["versions"]
    alert = MsgAlert.create({"a": 1}, "k")
    alert.sender_info = sender_info_for("x")
    headers = alert.encode()[0].properties.headers
    assert headers["sender_info"]["versions"]["dripline.extensions.pluga"]["version"] == "1.4.2"


def test_plugin_without_version_registers_none_but_offers_classes(site):
    site.namespace_plugin("plugnov", ENTITY.format(cls="ThingNoVersion"))
    site.refresh()
    assert get_version("dripline.extensions.plugnov") is None
    assert find_class("ThingNoVersion").__name__ == "ThingNoVersion"


def test_refresh_forgets_removed_plugins(site):
    site.namespace_plugin("plugtmp", JITTERISH_INIT, things=ENTITY.format(cls="ThingTmp"))
    site.refresh()
    assert "dripline.extensions.plugtmp" in get_versions()
    import shutil
    shutil.rmtree(os.path.join(site.root, "dripline", "extensions", "plugtmp"))
    site.refresh()
    assert "dripline.extensions.plugtmp" not in get_versions()
    import dripline.extensions as ext
    assert not hasattr(ext, "plugtmp")


def test_a_broken_plugin_is_reported_and_skipped(site, caplog):
    site.namespace_plugin("plugbroken", "raise ImportError('the driver library is missing')\n")
    site.namespace_plugin("pluggood", JITTERISH_INIT, things=ENTITY.format(cls="ThingGood"))
    with caplog.at_level(logging.WARNING, logger="dripline.assembly.plugins"):
        found = site.refresh()
    broken = next(p for p in found if p.name == "plugbroken")
    assert not broken.ok and broken.error == "ImportError: the driver library is missing"
    assert broken.origin and broken.origin.endswith("plugbroken/__init__.py:1")
    assert "uninstall" in broken.hint
    # the log says which plugin, what went wrong and how to fix it
    text = caplog.text
    assert "plugbroken" in text and "the driver library is missing" in text and "fix:" in text
    # the others still work
    assert find_class("ThingGood").__name__ == "ThingGood"
    assert [p.kind for p in plugins.problems()] == ["broken plugin"]
    # an unknown name mentions the broken plugin as a possible source
    with pytest.raises(ConfigError) as err:
        find_class("ThingFromBroken")
    assert "plugbroken" in err.value.message and "the class may come from it" in err.value.message


def test_a_plugin_missing_a_dependency_says_what_to_install(site):
    site.namespace_plugin("plugdeps", "import numpy_that_is_not_installed\n")
    site.refresh()
    plugin = next(p for p in plugins.plugins() if p.name == "plugdeps")
    assert plugin.error == "ModuleNotFoundError: No module named 'numpy_that_is_not_installed'"
    assert "pip install numpy_that_is_not_installed" in plugin.hint


def test_a_plugin_raising_anything_or_exiting_does_not_stop_discovery(site):
    site.namespace_plugin("plugexit", "import sys\nsys.exit(3)\n")
    site.namespace_plugin("plugzero", "x = 1 / 0\n")
    site.namespace_plugin("plugsyntax", "def broken(:\n")
    found = {p.name: p for p in site.refresh()}
    assert found["plugexit"].error.startswith("SystemExit")
    assert found["plugzero"].error.startswith("ZeroDivisionError")
    assert found["plugsyntax"].error.startswith("SyntaxError")
    assert "line 1" in found["plugsyntax"].hint


def test_reference_plugin_using_pkg_resources_works_when_setuptools_provides_it(site):
    pytest.importorskip("pkg_resources")
    site.namespace_plugin("plugpkgres", """
        import pkg_resources
        import scarab
        a_ver = '0.0.0'
        try:
            a_ver = pkg_resources.get_distribution('plug-pkgres').version
        except Exception:
            pass
        version = scarab.VersionSemantic()
        version.parse(a_ver)
        __all__ = ["version"]
    """)
    site.write("plug_pkgres-2.3.4.dist-info/METADATA", "Metadata-Version: 2.1\nName: plug-pkgres\nVersion: 2.3.4\n")
    site.refresh()
    assert get_versions()["dripline.extensions.plugpkgres"]["version"] == "2.3.4"


def test_reference_plugin_using_pkg_resources_fails_clearly_without_setuptools(site, monkeypatch):
    site.namespace_plugin("plugpkgres2", "import pkg_resources\n")
    monkeypatch.setitem(sys.modules, "pkg_resources", None)  # as if setuptools were not installed
    site.refresh()
    plugin = next(p for p in plugins.plugins() if p.name == "plugpkgres2")
    assert plugin.error.startswith("ModuleNotFoundError")
    assert "pip install setuptools" in plugin.hint and "importlib.metadata" in plugin.hint


def test_import_dripline_survives_a_broken_plugin_and_discovery_is_lazy(tmp_path):
    s = Site(str(tmp_path))
    s.namespace_plugin("plugbad", "raise ImportError('nope')\n")
    s.namespace_plugin("pluglazy", "import scarab\nversion = scarab.VersionSemantic(3, 0, 1)\n")
    r = run_python("""
        import sys
        import dripline
        assert "dripline.assembly.plugins" not in sys.modules, "discovery must not run at import"
        assert "dripline.extensions.pluglazy" not in sys.modules
        from dripline.protocol.message import MsgRequest
        from dripline.core import get_versions
        MsgRequest.create({"values": []}, 1, "x").encode()   # building a message discovers nothing
        assert "dripline.extensions.pluglazy" not in sys.modules
        assert "dripline.extensions.pluglazy" not in get_versions()
        assert "dripline.assembly.plugins" not in sys.modules
        from dripline.assembly import plugins
        plugins.discover()   # dl-serve's assembly step (a class lookup) registers the versions
        assert "dripline.extensions.pluglazy" in sys.modules
        print(get_versions()["dripline.extensions.pluglazy"]["version"])
    """, str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3.0.1"
    assert "plugbad" in r.stderr and "nope" in r.stderr  # reported once, on stderr


def test_reference_style_attribute_access_after_import_dripline(tmp_path):
    s = Site(str(tmp_path))
    s.namespace_plugin("plugattr", JITTERISH_INIT, things=ENTITY.format(cls="ThingAttr"))
    r = run_python("""
        import dripline
        print(dripline.extensions.plugattr.ThingAttr.__name__, dripline.core.Service.__name__,
              dripline.implementations.KeyValueStore.__name__)
    """, str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ThingAttr", "Service", "KeyValueStore"]


def test_editable_import_hook_mappings_are_found(site, tmp_path):
    """setuptools' editable installs of a flat layout map modules in a meta-path finder module."""
    checkout = tmp_path / "checkout"
    (checkout / "dripline" / "extensions" / "plugedit").mkdir(parents=True)
    (checkout / "dripline" / "extensions" / "plugedit" / "__init__.py").write_text(
        "import scarab\nversion = scarab.VersionSemantic(0, 9, 1)\n" + ENTITY.format(cls="ThingEdit"))
    import importlib.machinery
    import importlib.util
    import types
    hook = types.ModuleType("__editable___plugedit_0_9_1_finder")
    hook.MAPPING = {"dripline.extensions.plugedit": str(checkout / "dripline/extensions/plugedit")}

    class Finder:
        @classmethod
        def find_spec(cls, fullname, path=None, target=None):
            if fullname in hook.MAPPING:
                return importlib.util.spec_from_file_location(
                    fullname, os.path.join(hook.MAPPING[fullname], "__init__.py"))
            return None

    Finder.__module__ = hook.__name__
    hook.Finder = Finder
    sys.modules[hook.__name__] = hook
    sys.meta_path.append(Finder)
    site.modules += ["dripline.extensions.plugedit", hook.__name__]
    try:
        site.refresh()
        assert find_class("ThingEdit").__module__ == "dripline.extensions.plugedit"
        assert get_versions()["dripline.extensions.plugedit"]["version"] == "0.9.1"
        plugin = next(p for p in plugins.plugins() if p.name == "plugedit")
        assert plugin.editable_finder == hook.__name__
    finally:
        sys.meta_path.remove(Finder)


# --- entry-point plugins -------------------------------------------------------------------------

def test_entry_point_plugin_classes_load_on_demand(site):
    site.entry_point_dist("plug-ep", "0.3.1", {"EpThing": "plug_ep_mod.things:EpThing",
                                               "EpAlias": "plug_ep_mod.things:EpThing"},
                          {"plug_ep_mod.__init__": "", "plug_ep_mod.things": ENTITY.format(cls="EpThing")})
    found = site.refresh()
    # by name: other entry-point plugins installed where the tests run are listed too
    plugin = next(p for p in found if p.name == "plug_ep")
    assert plugin.kind == "entry point" and plugin.distribution == "plug-ep"
    # its version is known without importing it
    assert "plug_ep_mod.things" not in sys.modules
    assert get_versions()["dripline.extensions.plug_ep"] == {"version": "0.3.1", "package": "plug-ep"}
    cls = find_class("EpThing")
    assert cls.__module__ == "plug_ep_mod.things"
    assert find_class("EpAlias") is cls
    endpoint = create_object({"name": "ep1", "module": "EpThing", "initial_value": 3}, "Endpoint")
    assert isinstance(endpoint, cls) and endpoint.on_get() == {"value_raw": 3}


def test_module_entry_point_offers_all_its_classes(site):
    site.entry_point_dist("plug-mod", "1.0.0", {"everything": "plug_mod_all"},
                          {"plug_mod_all": ENTITY.format(cls="ModThing")})
    site.refresh()
    assert find_class("ModThing").__module__ == "plug_mod_all"
    assert "ModThing" in plugins.class_names()


def test_broken_entry_point_is_reported_only_when_used(site):
    site.entry_point_dist("plug-epbad", "0.1.0", {"EpBad": "plug_epbad_mod:EpBad"},
                          {"plug_epbad_mod": "raise ImportError('no driver')\n"})
    site.refresh()
    assert find_class("KeyValueStore").__name__ == "KeyValueStore"  # unrelated lookups work
    with pytest.raises(ConfigError) as err:
        find_class("EpBad")
    assert "no driver" in err.value.message
    infos, problems = plugins.available_classes()
    assert any(p.kind == "broken plugin" and "no driver" in p.message for p in problems)


# --- names: duplicates, shadowing, unknown ----------------------------------------------------------

def test_two_plugins_offering_one_class_name_is_an_error_naming_both(site):
    site.namespace_plugin("plugdup1", ENTITY.format(cls="Dup"))
    site.entry_point_dist("plug-dup2", "2.0.0", {"Dup": "plug_dup2_mod:Dup"},
                          {"plug_dup2_mod": ENTITY.format(cls="Dup")})
    site.refresh()
    with pytest.raises(ConfigError) as err:
        find_class("Dup")
    message = err.value.message
    assert "ambiguous" in message and "plugdup1" in message and "plug_dup2" in message
    assert "`module: plugdup1.Dup`" in message and "`module: plug_dup2.Dup`" in message
    # either can be chosen explicitly
    assert find_class("plugdup1.Dup").__module__ == "dripline.extensions.plugdup1"
    assert find_class("plug_dup2.Dup").__module__ == "plug_dup2_mod"
    assert find_class("plug-dup2.Dup").__module__ == "plug_dup2_mod"  # distribution name works too
    _, problems = plugins.available_classes()
    assert [p for p in problems if p.kind == "ambiguous name" and "'Dup'" in p.message]


def test_one_class_re_exported_by_two_plugins_is_not_ambiguous(site):
    site.namespace_plugin("plugorig", ENTITY.format(cls="Shared"))
    site.namespace_plugin("plugreexport", "from dripline.extensions.plugorig import Shared\n__all__ = ['Shared']\n")
    site.refresh()
    assert find_class("Shared").__module__ == "dripline.extensions.plugorig"


def test_a_plugin_class_shadows_a_builtin_and_the_listing_says_so(site):
    site.namespace_plugin("plugshadow", ENTITY.format(cls="KeyValueStore"))
    site.refresh()
    assert find_class("KeyValueStore").__module__ == "dripline.extensions.plugshadow"
    infos, problems = plugins.available_classes()
    assert any(p.kind == "shadowed built-in" and "KeyValueStore" in p.message for p in problems)
    kvs = [i for i in infos if i.name == "KeyValueStore"]
    assert [i.source for i in kvs] == ["plugshadow (dripline.extensions)"]


def test_unknown_module_gives_near_matches_and_places_searched(site):
    site.namespace_plugin("plugnear", ENTITY.format(cls="JitterThing"))
    site.refresh()
    with pytest.raises(ConfigError) as err:
        create_object({"name": "x", "module": "JiterThing"}, "Endpoint")
    message = err.value.message
    assert "unknown module 'JiterThing'" in message and "did you mean 'JitterThing'" in message
    assert "namespace dripline.extensions (folders:" in message and site.root in message
    assert "entry points 'dripline.extensions'" in message
    assert "dripline.implementations" in message and "dripline.core" in message
    assert "dl-serve --list" in message


def test_plugin_module_names_are_not_classes(site):
    """The reference matched a plugin *module* named like the class; only classes count here."""
    site.namespace_plugin("Widget", "x = 1\n")
    site.refresh()
    with pytest.raises(ConfigError):
        find_class("Widget")


def test_dotted_import_path_needs_an_endpoint_class():
    assert find_class("dripline.implementations.key_value_store.KeyValueStore").__name__ == "KeyValueStore"
    with pytest.raises(ConfigError):
        find_class("subprocess.Popen")


# --- module_path -------------------------------------------------------------------------------------

def test_endpoint_module_path_is_relative_to_the_yaml_file(tmp_path, monkeypatch):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "local_things.py").write_text(ENTITY.format(cls="LocalThing"))
    monkeypatch.chdir(tmp_path)  # not the YAML's folder
    service = create_object({"name": "svc_mp", "make_connection": False, "endpoints": [
        {"name": "lt", "module": "LocalThing", "module_path": "local_things.py", "initial_value": 5}]},
        "Service", base_dir=str(conf_dir))
    assert type(service.endpoint("lt")).__name__ == "LocalThing"
    assert service.endpoint("lt").on_get() == {"value_raw": 5}


def test_module_path_relative_to_the_working_directory_still_works(tmp_path, monkeypatch):
    (tmp_path / "cwd_things.py").write_text(ENTITY.format(cls="CwdThing"))
    monkeypatch.chdir(tmp_path)
    assert find_class("CwdThing", "cwd_things.py", base_dir=str(tmp_path / "elsewhere")).__name__ == "CwdThing"


# --- credential groups ----------------------------------------------------------------------------

def test_auth_groups_default_is_postgres():
    groups = plugins.auth_groups()
    assert groups["postgres"] == {"username": {"default": "postgres", "env": "POSTGRES_USER"},
                                  "password": {"default": "postgres", "env": "POSTGRES_PASSWORD"}}


def test_reference_add_auth_spec_hook(site, tmp_path):
    site.namespace_plugin("add_auth_spec_pkg", "")  # keeps the namespace __init__ written
    site.write("dripline/extensions/add_auth_spec.py", """
        import dripline.implementations
        import scarab

        __all__ = ['AddAuthSpec']

        class AddAuthSpec(dripline.implementations.BaseAddAuthSpec):
            def __init__(self, app):
                dripline.implementations.BaseAddAuthSpec.__init__(self, app)
                self.add_slack_auth_spec(app)

            def add_slack_auth_spec(self, app):
                auth_spec = {'dripline': {'default': 'default-token', 'env': 'DRIPLINE_SLACK_TOKEN'}}
                app.add_default_auth_spec_group('slack', scarab.to_param(auth_spec).as_node())
    """)
    site.modules.append("dripline.extensions.add_auth_spec")
    site.refresh()
    groups = plugins.auth_groups()
    assert groups["slack"] == {"dripline": {"default": "default-token", "env": "DRIPLINE_SLACK_TOKEN"}}
    assert "postgres" in groups
    from dripline.assembly.config import build_authentication
    auth = build_authentication(extra_groups=groups, env={"DRIPLINE_SLACK_TOKEN": "xoxb-1"})
    assert auth.get("slack", "dripline") == "xoxb-1"
    auth_file = tmp_path / "auths.json"
    auth_file.write_text('{"slack": {"dripline": "from-file"}}')
    assert build_authentication(auth_file=str(auth_file), extra_groups=groups, env={}).get(
        "slack", "dripline") == "from-file"


def test_auth_groups_attribute_and_entry_point_forms(site):
    site.namespace_plugin("plugauth", """
        auth_groups = {"instrument": {"api_key": {"default": "none", "env": "INSTRUMENT_KEY"}}}
    """)
    site.entry_point_dist("plug-authep", "1.0.0", {"weather": "plug_authep_mod:weather_spec"},
                          {"plug_authep_mod": """
                              def weather_spec():
                                  return {"token": {"default": "", "env": "WEATHER_TOKEN"}}
                          """}, group="dripline.auth_groups")
    site.refresh()
    groups = plugins.auth_groups()
    assert groups["instrument"] == {"api_key": {"default": "none", "env": "INSTRUMENT_KEY"}}
    assert groups["weather"] == {"token": {"default": "", "env": "WEATHER_TOKEN"}}
    assert "postgres" in groups


def test_a_failing_auth_hook_is_logged_and_postgres_remains(site, caplog):
    site.namespace_plugin("plugauthbad", "def auth_groups():\n    raise RuntimeError('boom')\n")
    site.refresh()
    with caplog.at_level(logging.WARNING, logger="dripline.assembly.plugins"):
        groups = plugins.auth_groups()
    assert set(groups) == {"postgres"} and "boom" in caplog.text


def test_base_add_auth_spec_and_collector():
    from dripline.implementations import BaseAddAuthSpec
    from dripline.implementations.base_add_auth_spec import AuthSpecCollector
    app = AuthSpecCollector()
    BaseAddAuthSpec(app)
    assert set(app.groups) == {"postgres"}
    with pytest.raises(TypeError):
        app.add_default_auth_spec_group("bad", ["not", "a", "mapping"])


# --- listing ------------------------------------------------------------------------------------------

def test_listing_names_kind_source_package_and_version(site):
    site.namespace_plugin("pluglist", JITTERISH_INIT, things=ENTITY.format(cls="ListThing") + """
from dripline.core import Service
__all__.append("ListService")
class ListService(Service):
    pass
""")
    site.entry_point_dist("plug-listep", "4.5.6", {"ListEp": "plug_listep_mod:ListEp"},
                          {"plug_listep_mod": ENTITY.format(cls="ListEp")})
    site.refresh()
    import io

    from dripline.cli.plugin import print_class_list
    out = io.StringIO()
    assert print_class_list(out) == 0
    lines = {line.split()[0]: line.split() for line in out.getvalue().splitlines()
             if line.startswith("  ") and len(line.split()) >= 4}
    assert lines["ListThing"][:3] == ["ListThing", "Endpoint", "pluglist"]
    assert lines["ListThing"][-1] == "1.4.2"
    assert lines["ListService"][1] == "Service"
    assert lines["ListEp"] == ["ListEp", "Endpoint", "plug_listep", "plug-listep", "4.5.6"]
    assert lines["KeyValueStore"][1:] == ["Endpoint", "dripline.implementations", "dripline",
                                          dripline.__version__]
    assert "pluglist: namespace plugin" in out.getvalue()


def test_listing_returns_1_and_shows_problems(site):
    site.namespace_plugin("pluglistbad", "raise ImportError('gone')\n")
    site.refresh()
    import io

    from dripline.cli.plugin import print_class_list
    out = io.StringIO()
    assert print_class_list(out) == 1
    text = out.getvalue()
    assert "Problems:" in text and "[broken plugin]" in text and "gone" in text and "fix:" in text
    assert "pluglistbad: namespace plugin" in text and "BROKEN" in text
