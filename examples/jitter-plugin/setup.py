"""Packaging of the jitter example plugin (the layout of the dripline plugin guide).

Only the ``dripline.extensions.*`` packages are shipped: the plugin's ``dripline/`` folder holds
nothing but ``extensions/__init__.py`` (the namespace line) and the plugin's own folder, so it
overlays the ``dripline.extensions`` namespace of an installed dripline without replacing it.
"""
from setuptools import find_namespace_packages, setup

setup(
    name="jitter_plugin",
    version="1.0.0",
    description="Example dripline plugin: a KeyValueStore whose readings jitter",
    packages=find_namespace_packages(include=["dripline.extensions.*"]),
    install_requires=["dripline"],
    python_requires=">=3.9",
)
