"""Settings every dripline process reads: the mesh block, credentials, secrets, data files.

Clients and services both need these (an `Interface()` reads ``~/.dripline_mesh.yaml`` and the
credentials as dl-serve does), so they sit below both; building objects from service files stays in
`dripline.assembly`. Imports nothing of dripline but `dripline.protocol`.
"""
